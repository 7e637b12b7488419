//! Two-factor authentication with TOTP through OpenBao's totp engine: one key per user
//! (`user-<uid>`), generated and kept by OpenBao. Identity never holds the secret: it shows
//! the enrolment (otpauth URL and QR PNG) once and asks OpenBao whether a code is valid.
//!
//! Unlike Barong (opendax #92, #145; barong #545): OpenBao sealed or unreachable is 503
//! `identity.vault_unavailable`, and a code used twice is 422 `identity.otp.already_used`,
//! never a 500. Sessions and API keys already issued do not touch OpenBao, so they go on.

use peregrine_secrets::totp::{Enrolment, Verdict};

use crate::error::AuthError;
use crate::identity::{Identity, SessionAuth, Source};
use crate::store::User;
use crate::vault::{Vault, bao_error};

impl Identity {
    /// Asks OpenBao whether `code` is `user`'s current code; `Ok` only for a valid, unused one.
    pub(crate) async fn check_otp(&self, user: &User, code: Option<&str>) -> Result<(), AuthError> {
        let code = code.map(str::trim).filter(|c| !c.is_empty());
        let code = code.ok_or(AuthError::MissingOtp)?;
        let vault = self.vault()?;
        let key = Vault::totp_key(&user.uid);
        let verdict = vault
            .client
            .totp_check(&vault.config.totp_mount, &key, code)
            .await
            .map_err(bao_error)?;
        match verdict {
            Verdict::Valid => Ok(()),
            Verdict::AlreadyUsed => Err(AuthError::OtpAlreadyUsed),
            _ => Err(AuthError::InvalidOtp),
        }
    }

    /// The check a 2FA-protected action makes: 2FA enabled, and a fresh valid code.
    pub async fn require_otp(&self, user: &User, code: Option<&str>) -> Result<(), AuthError> {
        if !user.otp_enabled {
            return Err(AuthError::OtpNotEnabled);
        }
        self.check_otp(user, code).await
    }

    /// A new TOTP key for the session's user, not enabled until a code from it is verified
    /// ([`Identity::otp_enable`]); a pending one is replaced. Refused when 2FA is on.
    pub async fn otp_generate(
        &self,
        auth: &SessionAuth,
        source: &Source,
    ) -> Result<Enrolment, AuthError> {
        let result = async {
            if auth.user.otp_enabled {
                return Err(AuthError::OtpAlreadyEnabled);
            }
            let vault = self.vault()?;
            let (mount, key) = (&vault.config.totp_mount, Vault::totp_key(&auth.user.uid));
            // OpenBao would replace an existing key anyway; deleting first says that an
            // abandoned enrolment's secret is gone even if the generation below fails.
            vault
                .client
                .totp_delete(mount, &key)
                .await
                .map_err(bao_error)?;
            vault
                .client
                .totp_generate(mount, &key, &vault.config.totp_issuer, &auth.user.email)
                .await
                .map_err(bao_error)
        }
        .await;
        let uid = &auth.user.uid;
        self.audited(uid, "identity.otp.generate", uid, source, result)
            .await
    }

    /// Turns 2FA on with a code from the generated key, and ends the user's other sessions:
    /// from here on every live session of the user has proved a code, which is what an access
    /// token's `otp` claim tells the control API.
    pub async fn otp_enable(
        &self,
        auth: &SessionAuth,
        code: &str,
        source: &Source,
    ) -> Result<(), AuthError> {
        let result = async {
            if auth.user.otp_enabled {
                return Err(AuthError::OtpAlreadyEnabled);
            }
            self.check_otp(&auth.user, Some(code)).await?;
            if !self
                .store()
                .set_otp_enabled(auth.user.id, true, self.now_ms())
                .await?
            {
                return Err(AuthError::OtpAlreadyEnabled);
            }
            self.store()
                .revoke_sessions_of(auth.user.id, Some(&auth.session.digest), self.now_ms())
                .await?;
            Ok(())
        }
        .await;
        let uid = &auth.user.uid;
        self.audited(uid, "identity.otp.enable", uid, source, result)
            .await
    }

    /// Turns 2FA off with a current code; the key is deleted from OpenBao.
    pub async fn otp_disable(
        &self,
        auth: &SessionAuth,
        code: &str,
        source: &Source,
    ) -> Result<(), AuthError> {
        let result = async {
            self.require_otp(&auth.user, Some(code)).await?;
            let vault = self.vault()?;
            // The flag first: a key left behind by a failure below is harmless (2FA is off and
            // the next generate replaces it); the reverse order could leave 2FA on with no key.
            if !self
                .store()
                .set_otp_enabled(auth.user.id, false, self.now_ms())
                .await?
            {
                return Err(AuthError::OtpNotEnabled);
            }
            let key = Vault::totp_key(&auth.user.uid);
            vault
                .client
                .totp_delete(&vault.config.totp_mount, &key)
                .await
                .map_err(bao_error)
        }
        .await;
        let uid = &auth.user.uid;
        self.audited(uid, "identity.otp.disable", uid, source, result)
            .await
    }
}
