//! `wharf namespace create|list|describe|update|delete|token ...|config ...`
//! (admin).

use super::client::{json_text, Client, ClientArgs};
use super::table;
use crate::api::types::{
    ConfigList, CreateNamespaceRequest, NamespaceDeleted, NamespaceList, NamespaceResponse,
    SetVarRequest, TokenCreated, TokenList, TokenRevoked, VarDeleted, VarResponse,
};
use crate::service::grants::VarView;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Namespace commands.
#[derive(clap::Subcommand)]
pub enum NamespaceCommand {
    /// Create a namespace.
    Create {
        /// Name.
        name: String,
        /// A quota as KEY=VALUE (e.g. max_concurrent_attempts=5); repeatable.
        #[arg(long = "quota", value_name = "KEY=VALUE")]
        quotas: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List namespaces.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Quotas, usage and open activities of a namespace.
    Describe {
        /// Name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change quotas and/or the outbound HTTP policy. The egress options
    /// together replace the namespace's policy.
    Update {
        /// Name.
        name: String,
        /// A quota as KEY=VALUE; repeatable.
        #[arg(long = "quota", value_name = "KEY=VALUE")]
        quotas: Vec<String>,
        /// How long closed activities are kept (e.g. `1d`, `12h`; 1 s to
        /// 10 years); the same as `--quota retention=DURATION`.
        #[arg(long, value_name = "DURATION")]
        retention: Option<String>,
        #[command(flatten)]
        egress: EgressArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a namespace (refused while activities are open, unless --force).
    Delete {
        /// Name.
        name: String,
        /// Cancel open activities first.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Manage a namespace's bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage a namespace's configuration variables (secrets among them).
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// The outbound HTTP policy options of `namespace update`.
#[derive(clap::Args)]
pub struct EgressArgs {
    /// Let the namespace's modules reach a host: `https://api.example.com`,
    /// `*.example.com`, `http://127.0.0.1:8080`, `example.com:*`; repeatable.
    #[arg(long = "allow-host", value_name = "PATTERN")]
    allow_hosts: Vec<String>,
    /// Let allowed hosts resolve into a non-public range (CIDR, e.g.
    /// `127.0.0.0/8`); repeatable.
    #[arg(long = "allow-private", value_name = "CIDR")]
    allow_private: Vec<String>,
    /// Narrow one module to some of the allowed hosts, as MODULE=PATTERN
    /// (MODULE is `NAME`, bound to its latest version now, or
    /// `NAME@VERSION`); repeatable. Content uploaded under the name later
    /// reaches nothing until the policy is set again.
    #[arg(long = "module-host", value_name = "MODULE=PATTERN")]
    module_hosts: Vec<String>,
    /// An egress limit as KEY=VALUE (e.g. max_response_bytes=1048576,
    /// total_timeout_ms=5000); repeatable.
    #[arg(long = "egress-limit", value_name = "KEY=VALUE")]
    limits: Vec<String>,
    /// Remove the policy: every outbound request is denied again.
    #[arg(long, conflicts_with_all = ["allow_hosts", "allow_private", "module_hosts", "limits"])]
    deny_egress: bool,
}

impl EgressArgs {
    /// The policy these options describe, or `None` if none was given.
    fn policy(&self) -> anyhow::Result<Option<Value>> {
        if self.deny_egress {
            return Ok(Some(json!({})));
        }
        if self.allow_hosts.is_empty()
            && self.allow_private.is_empty()
            && self.module_hosts.is_empty()
            && self.limits.is_empty()
        {
            return Ok(None);
        }
        let mut modules: Map<String, Value> = Map::new();
        for item in &self.module_hosts {
            let (m, host) = split_pair(item, "--module-host")?;
            let list = modules.entry(m).or_insert_with(|| json!([]));
            if let Some(a) = list.as_array_mut() {
                a.push(Value::String(host));
            }
        }
        Ok(Some(json!({
            "allow_hosts": self.allow_hosts,
            "allow_private": self.allow_private,
            "modules": modules,
            "limits": parse_pairs(&self.limits, "--egress-limit")?,
        })))
    }
}

/// Configuration variable commands.
#[derive(clap::Subcommand)]
pub enum ConfigCommand {
    /// Set a variable (replacing its value and grants).
    Set {
        /// Namespace.
        #[arg(value_name = "NAMESPACE")]
        ns: String,
        /// Variable name.
        key: String,
        /// The value; `-` reads it from stdin (keeps it out of shell history).
        value: String,
        /// A module that may read it: `NAME` (its latest version now),
        /// `NAME@VERSION`, or `*` for every module; repeatable. The grant
        /// follows the content of the version named: a later upload under
        /// the name cannot read it until the variable is set again. Without
        /// one, no module can read it.
        #[arg(long = "grant", value_name = "MODULE")]
        grants: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List variables and their grants (values only with --show-values).
    List {
        /// Namespace.
        #[arg(value_name = "NAMESPACE")]
        ns: String,
        /// Print the values too.
        #[arg(long)]
        show_values: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a variable.
    Delete {
        /// Namespace.
        #[arg(value_name = "NAMESPACE")]
        ns: String,
        /// Variable name.
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Token commands.
#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Make a token (shown once).
    Create {
        /// Namespace.
        #[arg(value_name = "NAMESPACE")]
        ns: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List tokens (ids only).
    List {
        /// Namespace.
        #[arg(value_name = "NAMESPACE")]
        ns: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a token by id.
    Revoke {
        /// Namespace.
        #[arg(value_name = "NAMESPACE")]
        ns: String,
        /// Token id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn split_pair(item: &str, flag: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = item
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("{flag} {item:?} is not KEY=VALUE"))?;
    Ok((k.to_owned(), v.to_owned()))
}

/// KEY=VALUE items as a JSON object; a VALUE that is not JSON is a string.
fn parse_pairs(items: &[String], flag: &str) -> anyhow::Result<Value> {
    let mut m = Map::new();
    for item in items {
        let (k, v) = split_pair(item, flag)?;
        let value = serde_json::from_str(&v).unwrap_or(Value::String(v));
        m.insert(k, value);
    }
    Ok(Value::Object(m))
}

fn parse_quotas(items: &[String]) -> anyhow::Result<Value> {
    parse_pairs(items, "--quota")
}

/// The admin API lives beside the namespaces, not inside one.
fn admin(args: &ClientArgs) -> anyhow::Result<(Client, ClientArgs)> {
    let mut a = args.clone();
    a.namespace = String::new();
    Ok((Client::new(&a)?, a))
}

/// The fields of a struct with their values as [`json_text`] shows them.
fn fields(v: &impl Serialize) -> Vec<(String, String)> {
    match serde_json::from_str(&json_text(v)) {
        Ok(Value::Object(m)) => m.into_iter().map(|(k, v)| (k, v.to_string())).collect(),
        _ => Vec::new(),
    }
}

fn print_namespace(v: &NamespaceResponse) {
    let n = &v.namespace;
    println!("namespace: {}", n.name);
    println!(
        "open activities: {} (payloads stored: {} of max_stored_bytes {}), running attempts: {}",
        n.open_activities, n.stored_bytes, n.quotas.max_stored_bytes, n.running_attempts
    );
    println!("quotas:");
    for (k, q) in fields(&n.quotas) {
        println!("  {k:<26} {q}");
    }
    println!("usage since start:");
    for (k, u) in fields(&n.usage) {
        println!("  {k:<26} {u}");
    }
    let e = &n.egress;
    if e.deny_all {
        println!("outbound HTTP: denied (no hosts allowed)");
    } else {
        println!("outbound HTTP:");
        let p = &e.policy;
        for (k, v) in [
            ("allow_hosts", json_text(&p.allow_hosts)),
            ("allow_private", json_text(&p.allow_private)),
            ("modules", json_text(&p.modules)),
            ("module_bindings", json_text(&e.module_bindings)),
            ("limits", json_text(&p.limits)),
        ] {
            println!("  {k:<26} {v}");
        }
    }
    if !n.config.is_empty() {
        println!("config (values hidden):");
        for v in &n.config {
            println!("  {:<26} granted to {}", v.key, bound_list(v));
        }
    }
}

/// What a variable is granted to: `*` if every module, then the module
/// versions its grants are bound to (`name@version sha256:abcdef012345`);
/// `nothing` when neither.
fn bound_list(var: &VarView) -> String {
    let mut out: Vec<String> = var
        .grants
        .iter()
        .filter(|g| *g == "*")
        .map(|_| "*".to_owned())
        .collect();
    for b in &var.bound {
        out.push(format!(
            "{}@{} sha256:{}",
            b.module,
            b.version,
            b.sha256.get(..12).unwrap_or(&b.sha256)
        ));
    }
    if out.is_empty() {
        "nothing".into()
    } else {
        out.join(", ")
    }
}

/// Runs a namespace command.
pub async fn run(cmd: NamespaceCommand) -> anyhow::Result<()> {
    match cmd {
        NamespaceCommand::Create {
            name,
            quotas,
            client,
        } => {
            let (c, args) = admin(&client)?;
            let body = CreateNamespaceRequest {
                name,
                quotas: Some(parse_quotas(&quotas)?),
            };
            let r = c.post::<NamespaceResponse>("", &body).await?;
            r.print(args.json, print_namespace);
        }
        NamespaceCommand::List { client } => {
            let (c, args) = admin(&client)?;
            let r = c.get::<NamespaceList>("").await?;
            r.print(args.json, |v| {
                let mut t = table::new(&["NAME", "OPEN", "RUNNING"]);
                table::right(&mut t, &[1, 2]);
                for n in &v.namespaces {
                    t.add_row(vec![
                        n.name.clone(),
                        n.open_activities.to_string(),
                        n.running_attempts.to_string(),
                    ]);
                }
                table::print(&t);
            });
        }
        NamespaceCommand::Describe { name, client } => {
            let (c, args) = admin(&client)?;
            let r = c
                .get::<NamespaceResponse>(&urlencoding::encode(&name))
                .await?;
            r.print(args.json, print_namespace);
        }
        NamespaceCommand::Update {
            name,
            quotas,
            retention,
            egress,
            client,
        } => {
            // A quota patch names only the quotas that change, so the body
            // is JSON rather than `UpdateNamespaceRequest`, whose quotas
            // are complete.
            let mut body = Map::new();
            let mut patch = parse_quotas(&quotas)?;
            if let (Some(r), Value::Object(m)) = (retention, &mut patch) {
                m.insert("retention".into(), Value::String(r));
            }
            if patch.as_object().is_some_and(|m| !m.is_empty()) {
                body.insert("quotas".into(), patch);
            }
            if let Some(policy) = egress.policy()? {
                body.insert("egress".into(), policy);
            }
            if body.is_empty() {
                anyhow::bail!(
                    "nothing to change: give --quota, --retention or egress options (--allow-host, ...)"
                );
            }
            let (c, args) = admin(&client)?;
            let r = c
                .patch::<NamespaceResponse>(&urlencoding::encode(&name), &body)
                .await?;
            r.print(args.json, print_namespace);
        }
        NamespaceCommand::Delete {
            name,
            force,
            client,
        } => {
            let (c, args) = admin(&client)?;
            let r = c
                .delete::<NamespaceDeleted>(&format!(
                    "{}?force={force}",
                    urlencoding::encode(&name)
                ))
                .await?;
            r.print(args.json, |d| println!("deleted namespace {}", d.deleted));
        }
        NamespaceCommand::Token(TokenCommand::Create {
            ns: namespace,
            client,
        }) => {
            let (c, args) = admin(&client)?;
            let r = c
                .post::<TokenCreated>(
                    &format!("{}/tokens", urlencoding::encode(&namespace)),
                    &json!({}),
                )
                .await?;
            r.print(args.json, |v| {
                println!(
                    "token {} for namespace {} (shown once, keep it):",
                    v.id, v.namespace
                );
                println!("{}", v.token);
            });
        }
        NamespaceCommand::Token(TokenCommand::List {
            ns: namespace,
            client,
        }) => {
            let (c, args) = admin(&client)?;
            let r = c
                .get::<TokenList>(&format!("{}/tokens", urlencoding::encode(&namespace)))
                .await?;
            r.print(args.json, |v| {
                let mut t = table::new(&["ID", "CREATED", "REVOKED"]);
                table::right(&mut t, &[1, 2]);
                for tok in &v.tokens {
                    t.add_row(vec![
                        tok.id.clone(),
                        tok.created_ms.to_string(),
                        tok.revoked_ms
                            .map_or_else(|| "null".to_owned(), |r| r.to_string()),
                    ]);
                }
                table::print(&t);
            });
        }
        NamespaceCommand::Token(TokenCommand::Revoke {
            ns: namespace,
            id,
            client,
        }) => {
            let (c, args) = admin(&client)?;
            let r = c
                .delete::<TokenRevoked>(&format!(
                    "{}/tokens/{}",
                    urlencoding::encode(&namespace),
                    urlencoding::encode(&id)
                ))
                .await?;
            r.print(args.json, |v| println!("revoked token {}", v.revoked));
        }
        NamespaceCommand::Config(cmd) => config(cmd).await?,
    }
    Ok(())
}

async fn config(cmd: ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Set {
            ns: namespace,
            key,
            value,
            grants,
            client,
        } => {
            let value = if value == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
                s.trim_end_matches(['\n', '\r']).to_owned()
            } else {
                value
            };
            let (c, args) = admin(&client)?;
            let r = c
                .put::<VarResponse>(
                    &config_path(&namespace, Some(&key)),
                    &SetVarRequest { value, grants },
                )
                .await?;
            r.print(args.json, |v| {
                println!(
                    "set {} in {namespace}, granted to {}",
                    v.variable.key,
                    bound_list(&v.variable)
                )
            });
        }
        ConfigCommand::List {
            ns: namespace,
            show_values,
            client,
        } => {
            let (c, args) = admin(&client)?;
            let path = format!("{}?values={show_values}", config_path(&namespace, None));
            let r = c.get::<ConfigList>(&path).await?;
            r.print(args.json, |v| {
                let mut t = table::new(&["KEY", "GRANTED TO", "VALUE"]);
                for var in &v.config {
                    t.add_row(vec![
                        var.key.clone(),
                        bound_list(var),
                        var.value.clone().unwrap_or_else(|| "(hidden)".to_owned()),
                    ]);
                }
                table::print(&t);
            });
        }
        ConfigCommand::Delete {
            ns: namespace,
            key,
            client,
        } => {
            let (c, args) = admin(&client)?;
            let r = c
                .delete::<VarDeleted>(&config_path(&namespace, Some(&key)))
                .await?;
            r.print(args.json, |v| {
                println!("deleted {} from {namespace}", v.deleted)
            });
        }
    }
    Ok(())
}

fn config_path(namespace: &str, key: Option<&str>) -> String {
    let ns = urlencoding::encode(namespace);
    match key {
        Some(k) => format!("{ns}/config/{}", urlencoding::encode(k)),
        None => format!("{ns}/config"),
    }
}
