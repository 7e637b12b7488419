//! KYC documents: checked before a byte of them is read (type allowlist, declared length),
//! sealed with AES-256-GCM under a fresh data key from OpenBao transit (envelope encryption:
//! only the wrapped data key and the ciphertext are stored; the data key in clear lives for
//! one request, zeroed on drop), and opened only for their owner or the compliance role.

use std::future::Future;
use std::time::Instant;

use axum::body::Bytes;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::{Kyc, KycError};
use crate::identity::Source;
use crate::rbac::Permission;
use crate::secret;
use crate::store::{DocumentMeta, DocumentRow, NewDocument, User};

/// Longest document number, characters (the column's width).
pub const DOC_NUMBER_CHARS_MAX: usize = 64;

/// The content types accepted, each known by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContentKind {
    /// `image/jpeg`.
    Jpeg,
    /// `image/png`.
    Png,
    /// `application/pdf`.
    Pdf,
}

impl ContentKind {
    const ALL: [ContentKind; 3] = [ContentKind::Jpeg, ContentKind::Png, ContentKind::Pdf];

    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            ContentKind::Jpeg => "image/jpeg",
            ContentKind::Png => "image/png",
            ContentKind::Pdf => "application/pdf",
        }
    }

    /// How every file of the kind starts.
    fn magic(self) -> &'static [u8] {
        match self {
            ContentKind::Jpeg => &[0xff, 0xd8, 0xff],
            ContentKind::Png => b"\x89PNG\r\n\x1a\n",
            ContentKind::Pdf => b"%PDF-",
        }
    }

    /// The kind of a `Content-Type` header's value (parameters ignored).
    pub fn from_header(value: &str) -> Option<ContentKind> {
        let mime = value.split(';').next().unwrap_or("").trim();
        ContentKind::ALL
            .into_iter()
            .find(|kind| kind.mime().eq_ignore_ascii_case(mime))
    }
}

/// What an upload says of itself besides its content.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[non_exhaustive]
pub struct UploadRequest {
    /// Type (`passport`, ...), from the configured allowlist.
    pub doc_type: String,
    /// The document's number.
    pub doc_number: String,
    /// Expiry, `YYYY-MM-DD`.
    pub doc_expire: Option<String>,
}

/// The additional data each document's ciphertext is bound to: its owner and type, so a
/// ciphertext moved to another user's row (or relabelled) no longer opens.
fn associated_data(user_id: i64, doc_type: &str) -> Vec<u8> {
    format!("peregrine.kyc.document\0{user_id}\0{doc_type}").into_bytes()
}

fn aead_key(data_key: &[u8]) -> Result<LessSafeKey, KycError> {
    let key = UnboundKey::new(&AES_256_GCM, data_key).map_err(|_| KycError::Crypto)?;
    Ok(LessSafeKey::new(key))
}

/// Seals `content`; the ciphertext with its tag appended.
fn seal(
    data_key: &[u8],
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    content: &[u8],
) -> Result<Vec<u8>, KycError> {
    let key = aead_key(data_key)?;
    let mut sealed = Vec::with_capacity(content.len() + AES_256_GCM.tag_len());
    sealed.extend_from_slice(content);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut sealed,
    )
    .map_err(|_| KycError::Crypto)?;
    assert_eq!(sealed.len(), content.len() + AES_256_GCM.tag_len());
    Ok(sealed)
}

/// Opens what [`seal`] made; `Crypto` when any byte of it, the nonce or the data changed.
fn open(data_key: &[u8], nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, KycError> {
    let key = aead_key(data_key)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KycError::Crypto)?;
    let mut buffer = ciphertext.to_vec();
    let plaintext_len = key
        .open_in_place(nonce, Aad::from(aad), &mut buffer)
        .map_err(|_| KycError::Crypto)?
        .len();
    buffer.truncate(plaintext_len);
    Ok(buffer)
}

impl Kyc {
    /// What may be checked before the body is read: the type, the document's fields, the
    /// content type and the declared length.
    fn check_upload(
        &self,
        request: &UploadRequest,
        content_type: Option<&str>,
        content_length: Option<u64>,
    ) -> Result<ContentKind, KycError> {
        let config = self.config();
        if !config.document_types.contains(&request.doc_type) {
            return Err(KycError::DocumentType);
        }
        let number = request.doc_number.trim();
        if number.is_empty()
            || number.chars().count() > DOC_NUMBER_CHARS_MAX
            || number.chars().any(char::is_control)
        {
            return Err(KycError::InvalidParams {
                field: "doc_number",
            });
        }
        if let Some(expire) = &request.doc_expire
            && !super::profile::is_date(expire)
        {
            return Err(KycError::InvalidParams {
                field: "doc_expire",
            });
        }
        let kind = content_type
            .and_then(ContentKind::from_header)
            .ok_or(KycError::ContentType)?;
        let length = content_length.ok_or(KycError::LengthRequired)?;
        if length > config.document_bytes_max as u64 {
            return Err(KycError::DocumentTooLarge {
                limit_bytes: config.document_bytes_max,
            });
        }
        if length == 0 {
            return Err(KycError::ContentMismatch(kind.mime()));
        }
        Ok(kind)
    }

    /// Stores a document of `user`. Everything that can be refused from the headers is
    /// refused before `read_body` is called; `read_body` is given the byte limit and must
    /// stop there. Audited either way.
    pub async fn upload_document<F, Fut>(
        &self,
        user: &User,
        request: &UploadRequest,
        content_type: Option<&str>,
        content_length: Option<u64>,
        read_body: F,
        source: &Source,
    ) -> Result<DocumentMeta, KycError>
    where
        F: FnOnce(usize) -> Fut,
        Fut: Future<Output = Result<Bytes, KycError>>,
    {
        let result = async {
            let kind = self.check_upload(request, content_type, content_length)?;
            let content = read_body(self.config().document_bytes_max).await?;
            if content.len() > self.config().document_bytes_max {
                return Err(KycError::DocumentTooLarge {
                    limit_bytes: self.config().document_bytes_max,
                });
            }
            if !content.starts_with(kind.magic()) {
                return Err(KycError::ContentMismatch(kind.mime()));
            }
            self.seal_and_store(user, request, kind, &content).await
        }
        .await;
        self.count_document("upload", &result);
        self.audited(
            &user.uid,
            "kyc.document.upload",
            &request.doc_type,
            source,
            result,
        )
        .await
    }

    async fn seal_and_store(
        &self,
        user: &User,
        request: &UploadRequest,
        kind: ContentKind,
        content: &[u8],
    ) -> Result<DocumentMeta, KycError> {
        let started = Instant::now();
        let config = self.config();
        let data_key = self
            .bao
            .transit_data_key(&config.transit_mount, &config.transit_key)
            .await?;
        let nonce = secret::random_bytes::<NONCE_LEN>(&self.rng)?;
        let aad = associated_data(user.id, &request.doc_type);
        let ciphertext = seal(data_key.plaintext.expose(), nonce, &aad, content)?;
        drop(data_key.plaintext);
        let size_bytes = i64::try_from(content.len()).map_err(|_| KycError::Crypto)?;
        let new = NewDocument {
            user_id: user.id,
            doc_type: &request.doc_type,
            doc_number: request.doc_number.trim(),
            doc_expire: request.doc_expire.as_deref(),
            content_type: kind.mime(),
            size_bytes,
            wrapped_key: &data_key.ciphertext,
            nonce: &nonce,
            ciphertext: &ciphertext,
            now_ms: self.identity.now_ms(),
        };
        let store = self.identity.store();
        let id = store
            .insert_document(&new, config.documents_per_user_max)
            .await?
            .ok_or(KycError::DocumentsExhausted)?;
        self.metrics
            .document_seal_seconds
            .observe(started.elapsed().as_secs_f64());
        let document = store
            .document(id)
            .await?
            .ok_or(KycError::DocumentNotFound)?;
        Ok(document.meta)
    }

    fn count_document<T>(&self, operation: &str, result: &Result<T, KycError>) {
        let outcome = result.as_ref().map_or_else(KycError::code, |_| "ok");
        self.metrics
            .documents_total
            .with_label_values(&[operation, outcome])
            .inc();
    }

    /// The user's own documents' metadata.
    pub async fn documents(&self, user: &User) -> Result<Vec<DocumentMeta>, KycError> {
        Ok(self.identity.store().documents_of(user.id).await?)
    }

    /// Opens a stored document.
    async fn open_document(&self, row: &DocumentRow) -> Result<Vec<u8>, KycError> {
        let started = Instant::now();
        let config = self.config();
        let data_key = self
            .bao
            .transit_decrypt(&config.transit_mount, &config.transit_key, &row.wrapped_key)
            .await?;
        let aad = associated_data(row.meta.user_id, &row.meta.doc_type);
        let content = open(data_key.expose(), &row.nonce, &aad, &row.ciphertext)?;
        self.metrics
            .document_open_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(content)
    }

    /// One of the user's own documents, opened. Another user's document is `DocumentNotFound`,
    /// exactly as one that does not exist (ids say nothing), and the attempt is audited.
    pub async fn read_document(
        &self,
        user: &User,
        id: i64,
        source: &Source,
    ) -> Result<(DocumentMeta, Vec<u8>), KycError> {
        let result = async {
            let row = self.identity.store().document(id).await?;
            let row = row
                .filter(|row| row.meta.user_id == user.id)
                .ok_or(KycError::DocumentNotFound)?;
            let content = self.open_document(&row).await?;
            Ok((row.meta, content))
        }
        .await;
        self.count_document("read", &result);
        self.audited(
            &user.uid,
            "kyc.document.read",
            &id.to_string(),
            source,
            result,
        )
        .await
    }

    /// Another user's documents' metadata; needs [`Permission::KycDocumentReadAny`].
    pub async fn admin_documents(
        &self,
        actor: &User,
        uid: &str,
        source: &Source,
    ) -> Result<Vec<DocumentMeta>, KycError> {
        self.authorize(actor, Permission::KycDocumentReadAny, uid, source)
            .await?;
        let result = async {
            let user = self.user_by_uid(uid).await?;
            self.documents(&user).await
        }
        .await;
        self.audited(&actor.uid, "kyc.document.list_any", uid, source, result)
            .await
    }

    /// Any document, opened; needs [`Permission::KycDocumentReadAny`].
    pub async fn admin_read_document(
        &self,
        actor: &User,
        id: i64,
        source: &Source,
    ) -> Result<(DocumentMeta, Vec<u8>), KycError> {
        let target = id.to_string();
        self.authorize(actor, Permission::KycDocumentReadAny, &target, source)
            .await?;
        let result = async {
            let row = self.identity.store().document(id).await?;
            let row = row.ok_or(KycError::DocumentNotFound)?;
            let content = self.open_document(&row).await?;
            Ok((row.meta, content))
        }
        .await;
        self.count_document("read_any", &result);
        self.audited(&actor.uid, "kyc.document.read_any", &target, source, result)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_content_opens_only_unchanged_and_for_its_owner() {
        let key = [7u8; 32];
        let nonce = [1u8; NONCE_LEN];
        let aad = associated_data(1, "passport");
        let sealed = seal(&key, nonce, &aad, b"%PDF-1.7 secret").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            open(&key, &nonce, &aad, &sealed).unwrap(),
            b"%PDF-1.7 secret"
        );
        let mut changed = sealed.clone();
        changed[3] ^= 1;
        assert!(open(&key, &nonce, &aad, &changed).is_err());
        assert!(open(&key, &nonce, &associated_data(2, "passport"), &sealed).is_err());
        assert!(open(&[8u8; 32], &nonce, &aad, &sealed).is_err());
    }

    #[test]
    fn content_types_are_an_allowlist() {
        assert_eq!(
            ContentKind::from_header("image/PNG; charset=x"),
            Some(ContentKind::Png)
        );
        assert_eq!(ContentKind::from_header("image/svg+xml"), None);
        assert_eq!(ContentKind::from_header("text/html"), None);
    }
}
