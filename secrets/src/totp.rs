//! The TOTP engine: one key per user, generated and kept by OpenBao; this side only ever sees
//! the enrolment URL and QR code once, and asks OpenBao whether a code is valid.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{check_name, data_str, malformed};
use crate::{BaoError, OpenBao};

/// What the user scans: the `otpauth://` URL and its QR code as PNG bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Enrolment {
    /// `otpauth://totp/<issuer>:<account>?secret=...` (holds the secret: never logged).
    pub url: String,
    /// The same as a QR code, PNG.
    pub qr_png: Vec<u8>,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Enrolment(<redacted>, {} bytes of PNG)",
            self.qr_png.len()
        )
    }
}

/// OpenBao's verdict on a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Valid, and now used.
    Valid,
    /// Not the current code.
    Invalid,
    /// The current code, already used once (OpenBao refuses a replay within its period).
    AlreadyUsed,
}

/// The longest code accepted for checking (OpenBao's codes are 6 or 8 digits).
pub const CODE_DIGITS_MAX: usize = 8;

impl OpenBao {
    /// Generates a new TOTP key `name` at `mount` for `account_name` under `issuer`. A key that
    /// exists is replaced by OpenBao (probed against OpenBao 2.7; the dev store's conformance
    /// test checks it).
    pub async fn totp_generate(
        &self,
        mount: &str,
        name: &str,
        issuer: &str,
        account_name: &str,
    ) -> Result<Enrolment, BaoError> {
        let path = format!("{}/keys/{}", check_name(mount)?, check_name(name)?);
        let body = json!({
            "generate": true,
            "exported": true,
            "issuer": issuer,
            "account_name": account_name,
            "qr_size": 200,
        });
        let answer = self.call(Method::POST, &path, Some(&body)).await?;
        let qr_png = STANDARD
            .decode(data_str(&answer, &path, "barcode")?)
            .map_err(|_| malformed(&path, "barcode is not base64"))?;
        Ok(Enrolment {
            url: data_str(&answer, &path, "url")?.to_owned(),
            qr_png,
        })
    }

    /// Asks whether `code` is the current code of key `name`; a code is valid once.
    ///
    /// A code that is not 1..=8 ASCII digits is [`Verdict::Invalid`] without asking OpenBao.
    pub async fn totp_check(
        &self,
        mount: &str,
        name: &str,
        code: &str,
    ) -> Result<Verdict, BaoError> {
        let path = format!("{}/code/{}", check_name(mount)?, check_name(name)?);
        if code.is_empty()
            || code.len() > CODE_DIGITS_MAX
            || !code.bytes().all(|b| b.is_ascii_digit())
        {
            return Ok(Verdict::Invalid);
        }
        let body = json!({ "code": code });
        match self.call(Method::POST, &path, Some(&body)).await {
            Ok(answer) => {
                let valid = answer
                    .as_ref()
                    .and_then(|value| value.pointer("/data/valid"))
                    .and_then(Value::as_bool)
                    .ok_or_else(|| malformed(&path, "data.valid"))?;
                Ok(if valid {
                    Verdict::Valid
                } else {
                    Verdict::Invalid
                })
            }
            Err(BaoError::Rejected { messages, .. })
                if messages
                    .iter()
                    .any(|message| message.contains("already used")) =>
            {
                Ok(Verdict::AlreadyUsed)
            }
            Err(error) => Err(error),
        }
    }

    /// Deletes the TOTP key `name` (2FA disabled); deleting a missing key succeeds.
    pub async fn totp_delete(&self, mount: &str, name: &str) -> Result<(), BaoError> {
        let path = format!("{}/keys/{}", check_name(mount)?, check_name(name)?);
        match self.call(Method::DELETE, &path, None).await {
            Ok(_) | Err(BaoError::NotFound { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }
}
