//! The flags that grant a standalone attempt (`wharf run`) or a Temporal
//! worker's attempts (`wharf worker`) outbound HTTP and configuration, where
//! no namespace stores them.

use super::client::parse_json;
use crate::engine::{ConfigGrants, EgressPolicy, Grants};
use anyhow::Context as _;
use std::sync::Arc;

/// Outbound HTTP and configuration granted from the command line.
#[derive(clap::Args, Clone, Default)]
pub struct GrantArgs {
    /// Let the activity reach a host over HTTP(S): `https://api.example.com`,
    /// `*.example.com`, `http://127.0.0.1:8080`; repeatable. Without one,
    /// every outbound request is denied.
    #[arg(long = "allow-host", value_name = "PATTERN")]
    allow_hosts: Vec<String>,
    /// Let allowed hosts resolve into a non-public range (CIDR, e.g.
    /// `127.0.0.0/8`); repeatable.
    #[arg(long = "allow-private", value_name = "CIDR")]
    allow_private: Vec<String>,
    /// A whole egress policy as JSON (`allow_hosts`, `allow_private`,
    /// `limits`), or `@FILE`; `--allow-host` and `--allow-private` add to it.
    #[arg(long, value_name = "JSON")]
    egress: Option<String>,
    /// A configuration variable the activity may read through `config`,
    /// as KEY=VALUE; repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
}

impl GrantArgs {
    /// The grants these flags describe (nothing, without flags).
    pub fn grants(&self) -> anyhow::Result<Grants> {
        let mut policy: EgressPolicy = match &self.egress {
            Some(s) => serde_json::from_value(parse_json(s, "--egress")?)
                .context("--egress is not an egress policy")?,
            None => EgressPolicy::default(),
        };
        policy.allow_hosts.extend(self.allow_hosts.iter().cloned());
        policy
            .allow_private
            .extend(self.allow_private.iter().cloned());
        policy.validate().map_err(anyhow::Error::msg)?;
        let mut config = ConfigGrants::default();
        for item in &self.config {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--config {item:?} is not KEY=VALUE"))?;
            config.grant(k, v);
        }
        Ok(Grants {
            egress: Arc::new(policy.compile(None).map_err(anyhow::Error::msg)?),
            config,
        })
    }
}
