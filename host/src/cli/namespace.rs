//! `wharf namespace create|list|describe|update|delete|token ...` (admin).

use super::client::{print, Client, ClientArgs};
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
    /// Change quotas.
    Update {
        /// Name.
        name: String,
        /// A quota as KEY=VALUE; repeatable.
        #[arg(long = "quota", value_name = "KEY=VALUE", required = true)]
        quotas: Vec<String>,
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
}

/// Token commands.
#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Make a token (shown once).
    Create {
        /// Namespace.
        namespace: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List tokens (ids only).
    List {
        /// Namespace.
        namespace: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a token by id.
    Revoke {
        /// Namespace.
        namespace: String,
        /// Token id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn parse_quotas(items: &[String]) -> anyhow::Result<Value> {
    let mut m = Map::new();
    for item in items {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--quota {item:?} is not KEY=VALUE"))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        m.insert(k.to_owned(), value);
    }
    Ok(Value::Object(m))
}

/// The admin API lives beside the namespaces, not inside one.
fn admin(args: &ClientArgs) -> anyhow::Result<(Client, ClientArgs)> {
    let mut a = args.clone();
    a.namespace = String::new();
    Ok((Client::new(&a)?, a))
}

fn print_namespace(v: &Value) {
    let n = &v["namespace"];
    println!("namespace: {}", n["name"].as_str().unwrap_or(""));
    println!(
        "open activities: {}, running attempts: {}",
        n["open_activities"], n["running_attempts"]
    );
    println!("quotas:");
    for (k, q) in n["quotas"].as_object().into_iter().flatten() {
        println!("  {k:<26} {q}");
    }
    println!("usage since start:");
    for (k, u) in n["usage"].as_object().into_iter().flatten() {
        println!("  {k:<26} {u}");
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
            let v = c
                .post("", &json!({"name": name, "quotas": parse_quotas(&quotas)?}))
                .await?;
            print(args.json, &v, print_namespace);
        }
        NamespaceCommand::List { client } => {
            let (c, args) = admin(&client)?;
            let v = c.get("").await?;
            print(args.json, &v, |v| {
                println!("{:<24} {:>8} {:>8}", "NAME", "OPEN", "RUNNING");
                for n in v["namespaces"].as_array().into_iter().flatten() {
                    println!(
                        "{:<24} {:>8} {:>8}",
                        n["name"].as_str().unwrap_or(""),
                        n["open_activities"].to_string(),
                        n["running_attempts"].to_string()
                    );
                }
            });
        }
        NamespaceCommand::Describe { name, client } => {
            let (c, args) = admin(&client)?;
            let v = c.get(&urlencoding::encode(&name)).await?;
            print(args.json, &v, print_namespace);
        }
        NamespaceCommand::Update {
            name,
            quotas,
            client,
        } => {
            let (c, args) = admin(&client)?;
            let v = c
                .patch(
                    &urlencoding::encode(&name),
                    &json!({"quotas": parse_quotas(&quotas)?}),
                )
                .await?;
            print(args.json, &v, print_namespace);
        }
        NamespaceCommand::Delete {
            name,
            force,
            client,
        } => {
            let (c, args) = admin(&client)?;
            let v = c
                .delete(&format!("{}?force={force}", urlencoding::encode(&name)))
                .await?;
            print(args.json, &v, |_| println!("deleted namespace {name}"));
        }
        NamespaceCommand::Token(TokenCommand::Create { namespace, client }) => {
            let (c, args) = admin(&client)?;
            let v = c
                .post(
                    &format!("{}/tokens", urlencoding::encode(&namespace)),
                    &json!({}),
                )
                .await?;
            print(args.json, &v, |v| {
                println!(
                    "token {} for namespace {namespace} (shown once, keep it):",
                    v["id"].as_str().unwrap_or("")
                );
                println!("{}", v["token"].as_str().unwrap_or(""));
            });
        }
        NamespaceCommand::Token(TokenCommand::List { namespace, client }) => {
            let (c, args) = admin(&client)?;
            let v = c
                .get(&format!("{}/tokens", urlencoding::encode(&namespace)))
                .await?;
            print(args.json, &v, |v| {
                println!("{:<14} {:>15} {:>15}", "ID", "CREATED", "REVOKED");
                for t in v["tokens"].as_array().into_iter().flatten() {
                    println!(
                        "{:<14} {:>15} {:>15}",
                        t["id"].as_str().unwrap_or(""),
                        t["created_ms"].to_string(),
                        t["revoked_ms"].to_string()
                    );
                }
            });
        }
        NamespaceCommand::Token(TokenCommand::Revoke {
            namespace,
            id,
            client,
        }) => {
            let (c, args) = admin(&client)?;
            let v = c
                .delete(&format!(
                    "{}/tokens/{}",
                    urlencoding::encode(&namespace),
                    urlencoding::encode(&id)
                ))
                .await?;
            print(args.json, &v, |_| println!("revoked token {id}"));
        }
    }
    Ok(())
}
