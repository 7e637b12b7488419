//! Identity's part of OpenBao: which mounts and keys it uses, the least-privilege policy its
//! token carries, and the set-up that makes them (run with an operator's or the dev root
//! token; identity itself then runs with the narrow token only).
//!
//! What identity keeps there:
//! - one TOTP key per user, `user-<uid>`, in the totp engine (the secret never leaves OpenBao
//!   after the enrolment's QR code is shown once);
//! - the JWT signing key, an ed25519 key in transit: identity asks OpenBao to sign and reads
//!   the public halves for the JWKS;
//! - the key that encrypts API-key secrets at rest, an AES-GCM key in transit;
//! - in its own KV v2 mount, documents an operator writes and identity only reads: the KYC
//!   provider webhook's HMAC secret.

use peregrine_secrets::sys::Engine;
use peregrine_secrets::transit::KeyType;
use peregrine_secrets::{BaoError, BaoToken, OpenBao};

use crate::error::AuthError;

/// Where identity's secrets live in OpenBao.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VaultConfig {
    /// The totp engine's mount.
    pub totp_mount: String,
    /// The transit engine's mount.
    pub transit_mount: String,
    /// The ed25519 transit key that signs access JWTs.
    pub jwt_key: String,
    /// The AES-GCM transit key that encrypts API-key secrets.
    pub secrets_key: String,
    /// The AES-GCM transit key that wraps KYC documents' data keys (KYC's
    /// `KycConfig::transit_key`, on the same mount).
    pub documents_key: String,
    /// Identity's KV v2 mount (documents an operator writes, identity reads).
    pub kv_mount: String,
    /// The KYC webhook secret's document in [`Self::kv_mount`] (field `secret`).
    pub webhook_secret_path: String,
    /// The issuer shown in authenticator apps.
    pub totp_issuer: String,
    /// The name of the policy [`provision`] writes (one per identity deployment sharing an
    /// OpenBao: a policy is looked up by name at each request).
    pub policy: String,
}

impl Default for VaultConfig {
    fn default() -> VaultConfig {
        VaultConfig {
            totp_mount: "totp".to_owned(),
            transit_mount: "transit".to_owned(),
            jwt_key: "identity-jwt".to_owned(),
            secrets_key: "identity-api-keys".to_owned(),
            documents_key: "kyc-documents".to_owned(),
            kv_mount: "peregrine-identity".to_owned(),
            webhook_secret_path: "kyc/webhook".to_owned(),
            totp_issuer: "Peregrine".to_owned(),
            policy: "peregrine-identity".to_owned(),
        }
    }
}

/// The lifetime of the token [`provision`] creates (OpenBao's syntax). Renewal is the
/// deployment's (the OpenBao agent's) job; the dev default is long enough for a session.
pub const TOKEN_TTL: &str = "768h";

impl VaultConfig {
    /// The OpenBao policy for identity's token: exactly the paths identity uses.
    ///
    /// Not granted on purpose: rotating or deleting the JWT or secrets keys (an operator's
    /// act), reading or exporting any key's private part, every other mount (KV with the
    /// wallets' seeds, other components' transit keys), TOTP keys not named `user-*`, and
    /// writing or listing its own KV mount (the webhook secret is an operator's to write).
    pub fn policy_hcl(&self) -> String {
        let (totp, transit) = (&self.totp_mount, &self.transit_mount);
        let (kv, webhook) = (&self.kv_mount, &self.webhook_secret_path);
        let (jwt, secrets, documents) = (&self.jwt_key, &self.secrets_key, &self.documents_key);
        format!(
            "# Peregrine identity: TOTP per user, JWT signing, API-key secrets and KYC \
             documents at rest.\n\
             path \"{totp}/keys/user-*\" {{ capabilities = [\"create\", \"update\", \"delete\"] }}\n\
             path \"{totp}/code/user-*\" {{ capabilities = [\"update\"] }}\n\
             path \"{transit}/sign/{jwt}\" {{ capabilities = [\"update\"] }}\n\
             path \"{transit}/keys/{jwt}\" {{ capabilities = [\"read\"] }}\n\
             path \"{transit}/encrypt/{secrets}\" {{ capabilities = [\"update\"] }}\n\
             path \"{transit}/decrypt/{secrets}\" {{ capabilities = [\"update\"] }}\n\
             path \"{transit}/keys/{documents}\" {{ capabilities = [\"create\", \"update\"] }}\n\
             path \"{transit}/datakey/plaintext/{documents}\" {{ capabilities = [\"update\"] }}\n\
             path \"{transit}/decrypt/{documents}\" {{ capabilities = [\"update\"] }}\n\
             path \"{kv}/data/{webhook}\" {{ capabilities = [\"read\"] }}\n"
        )
    }
}

/// Makes identity's engines, keys and policy with `admin` (a token allowed to), and returns
/// a new token carrying only [`VaultConfig::policy_hcl`]. Idempotent: existing mounts and
/// keys are kept.
pub async fn provision(admin: &OpenBao, config: &VaultConfig) -> Result<BaoToken, BaoError> {
    admin
        .ensure_engine(&config.totp_mount, Engine::Totp)
        .await?;
    admin
        .ensure_engine(&config.transit_mount, Engine::Transit)
        .await?;
    admin
        .transit_ensure_key(&config.transit_mount, &config.jwt_key, KeyType::Ed25519)
        .await?;
    admin
        .transit_ensure_key(
            &config.transit_mount,
            &config.secrets_key,
            KeyType::Aes256Gcm96,
        )
        .await?;
    admin
        .transit_ensure_key(
            &config.transit_mount,
            &config.documents_key,
            KeyType::Aes256Gcm96,
        )
        .await?;
    admin.ensure_engine(&config.kv_mount, Engine::KvV2).await?;
    admin
        .put_policy(&config.policy, &config.policy_hcl())
        .await?;
    admin.create_token(&[&config.policy], TOKEN_TTL).await
}

/// Identity's OpenBao client and where its secrets are.
#[derive(Clone, Debug)]
pub struct Vault {
    /// The client, with identity's own token.
    pub client: OpenBao,
    /// The mounts and keys.
    pub config: VaultConfig,
}

impl Vault {
    /// The TOTP key name of the user with public id `uid`.
    pub fn totp_key(uid: &str) -> String {
        format!("user-{uid}")
    }
}

/// Turns an OpenBao failure into the service's answer: 503 `identity.vault_unavailable` when
/// OpenBao cannot answer now, else a server error (a denied path is a deployment bug).
pub fn bao_error(error: BaoError) -> AuthError {
    if error.is_unavailable() {
        AuthError::VaultUnavailable
    } else {
        AuthError::Vault(error)
    }
}
