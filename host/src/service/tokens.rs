//! Bearer tokens of namespaces: made, listed and revoked here, kept only as
//! SHA-256 hashes. The API's authentication (`api/auth.rs`) holds the live
//! hashes in memory and is told of each change by the handler that made it.

use super::{Service, ServiceError};
use crate::store::tenancy::TokenRow;
use sha2::{Digest, Sha256};

/// SHA-256 of a token, hex: what is stored and compared.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random secret (256 bits, hex) with a prefix saying what it is.
pub fn new_secret(prefix: &str) -> String {
    let mut b = [0u8; 32];
    crate::random::fill_secret(&mut b);
    format!("{prefix}{}", hex::encode(b))
}

/// Length of a token's public id.
const ID_LEN: usize = 12;

impl Service {
    /// Makes a token for `ns`. Returns its record and the secret, which is
    /// not kept and so can be shown only now.
    pub async fn create_token(&self, ns: &str) -> Result<(TokenRow, String), ServiceError> {
        self.check_namespace(ns)?;
        let secret = new_secret("wharf_");
        let row = TokenRow {
            id: new_secret("")[..ID_LEN].to_owned(),
            namespace: ns.to_owned(),
            sha256: hash(&secret),
            created_ms: crate::now_ms(),
            revoked_ms: None,
        };
        self.shared.db.insert_token(row.clone()).await?;
        Ok((row, secret))
    }

    /// The tokens of `ns`, revoked ones included, oldest first.
    pub fn list_tokens(&self, ns: &str) -> Result<Vec<TokenRow>, ServiceError> {
        self.check_namespace(ns)?;
        let mut tokens = self.shared.db.tokens()?;
        tokens.retain(|t| t.namespace == ns);
        Ok(tokens)
    }

    /// Revokes a live token of `ns` by id; false if there is none.
    pub async fn revoke_token(&self, ns: &str, id: &str) -> Result<bool, ServiceError> {
        self.check_namespace(ns)?;
        Ok(self.shared.db.revoke_token(ns, id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_fresh_and_hashes_are_hex_sha256() {
        let (a, b) = (new_secret("wharf_"), new_secret("wharf_"));
        assert_ne!(a, b);
        assert!(a.starts_with("wharf_") && a.len() == 6 + 64);
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
