//! KYC rows: profiles, labels (and the level they give), documents' metadata and ciphertext,
//! and the webhook's replay cache. What the values mean (the state machine, the level rules,
//! the encryption) is `crate::kyc`'s; this module only stores them.

use super::api_keys::append_event;
use super::{Store, StoreError, User, on_pool};

/// Where a profile is in its review (Barong's states).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProfileState {
    /// Being filled in by its user.
    Drafted,
    /// Handed in for review; the user can no longer change it.
    Submitted,
    /// Accepted by compliance or the provider; final.
    Verified,
    /// Refused; the user may edit it again (back to drafted).
    Rejected,
}

impl ProfileState {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileState::Drafted => "drafted",
            ProfileState::Submitted => "submitted",
            ProfileState::Verified => "verified",
            ProfileState::Rejected => "rejected",
        }
    }

    /// The state named `value`.
    pub fn parse(value: &str) -> Option<ProfileState> {
        [
            ProfileState::Drafted,
            ProfileState::Submitted,
            ProfileState::Verified,
            ProfileState::Rejected,
        ]
        .into_iter()
        .find(|state| state.as_str() == value)
    }
}

/// A profile's personal fields (each already checked by `crate::kyc`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ProfileFields {
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Date of birth, `YYYY-MM-DD`.
    pub dob: Option<String>,
    /// Street address.
    pub address: Option<String>,
    /// Postal code.
    pub postcode: Option<String>,
    /// City.
    pub city: Option<String>,
    /// ISO 3166 country code.
    pub country: Option<String>,
    /// Free JSON text the front end keeps.
    pub metadata: Option<String>,
}

/// A stored profile.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProfileRow {
    /// Owner.
    pub user_id: i64,
    /// The fields.
    pub fields: ProfileFields,
    /// Review state.
    pub state: ProfileState,
    /// Created, Unix ms.
    pub created_at_ms: i64,
    /// Last changed, Unix ms.
    pub updated_at_ms: i64,
}

/// A stored label.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LabelRow {
    /// Key (`email`, `phone`, `document`, ...).
    pub key: String,
    /// `public` (the user's own) or `private` (set by the service only).
    pub scope: String,
    /// Value (`verified`, ...).
    pub value: String,
    /// Created, Unix ms.
    pub created_at_ms: i64,
    /// Last changed, Unix ms.
    pub updated_at_ms: i64,
}

/// One label change: set `value`, or remove the label when `None`.
#[derive(Clone, Debug)]
pub struct LabelChange<'a> {
    /// Key.
    pub key: &'a str,
    /// Scope.
    pub scope: &'a str,
    /// New value, or `None` to remove.
    pub value: Option<&'a str>,
}

/// A document to store: metadata and ciphertext, never the content in clear.
#[derive(Clone, Debug)]
pub struct NewDocument<'a> {
    /// Owner.
    pub user_id: i64,
    /// Type (`passport`, ...).
    pub doc_type: &'a str,
    /// The document's number.
    pub doc_number: &'a str,
    /// Expiry date, `YYYY-MM-DD`.
    pub doc_expire: Option<&'a str>,
    /// MIME type of the content.
    pub content_type: &'a str,
    /// Content length in clear, bytes.
    pub size_bytes: i64,
    /// The data key wrapped by OpenBao transit.
    pub wrapped_key: &'a str,
    /// AES-GCM nonce.
    pub nonce: &'a [u8],
    /// AES-GCM ciphertext with its tag.
    pub ciphertext: &'a [u8],
    /// Now, Unix ms.
    pub now_ms: i64,
}

/// A document's metadata.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct DocumentMeta {
    /// Key, the id users name it by.
    pub id: i64,
    /// Owner.
    #[serde(skip)]
    pub user_id: i64,
    /// Type.
    pub doc_type: String,
    /// Number.
    pub doc_number: String,
    /// Expiry.
    pub doc_expire: Option<String>,
    /// MIME type.
    pub content_type: String,
    /// Size in clear, bytes.
    pub size_bytes: i64,
    /// Uploaded, Unix ms.
    pub created_at_ms: i64,
}

/// A document with its sealed content.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DocumentRow {
    /// Metadata.
    pub meta: DocumentMeta,
    /// The data key wrapped by OpenBao transit.
    pub wrapped_key: String,
    /// AES-GCM nonce.
    pub nonce: Vec<u8>,
    /// AES-GCM ciphertext with its tag.
    pub ciphertext: Vec<u8>,
}

const PROFILE_COLUMNS: &str = "user_id, first_name, last_name, dob, address, postcode, city, \
                               country, metadata, state, created_at_ms, updated_at_ms";
type ProfileTuple = (
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
);

fn profile_from_tuple(row: ProfileTuple) -> Result<ProfileRow, StoreError> {
    let (user_id, first_name, last_name, dob, address, postcode, city, country, metadata, state) = (
        row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9,
    );
    Ok(ProfileRow {
        user_id,
        fields: ProfileFields {
            first_name,
            last_name,
            dob,
            address,
            postcode,
            city,
            country,
            metadata,
        },
        state: ProfileState::parse(&state).ok_or(StoreError::UnknownValue {
            column: "profiles.state",
            value: state,
        })?,
        created_at_ms: row.10,
        updated_at_ms: row.11,
    })
}

type LabelTuple = (String, String, String, i64, i64);

fn label_from_tuple((key, scope, value, created, updated): LabelTuple) -> LabelRow {
    LabelRow {
        key,
        scope,
        value,
        created_at_ms: created,
        updated_at_ms: updated,
    }
}

const DOCUMENT_META_COLUMNS: &str =
    "id, user_id, doc_type, doc_number, doc_expire, content_type, size_bytes, created_at_ms";
type DocumentMetaTuple = (i64, i64, String, String, Option<String>, String, i64, i64);

fn meta_from_tuple(row: DocumentMetaTuple) -> DocumentMeta {
    let (id, user_id, doc_type, doc_number, doc_expire, content_type, size_bytes, created) = row;
    DocumentMeta {
        id,
        user_id,
        doc_type,
        doc_number,
        doc_expire,
        content_type,
        size_bytes,
        created_at_ms: created,
    }
}

impl Store {
    /// The user with this public uid.
    pub async fn user_by_uid(&self, uid: &str) -> Result<Option<User>, StoreError> {
        const SQL: &str = "SELECT id FROM users WHERE uid = ?";
        let id: Option<i64> = on_pool!(self, |pool, _d| {
            sqlx::query_scalar(SQL)
                .bind(uid)
                .fetch_optional(pool)
                .await?
        });
        match id {
            Some(id) => self.user_by_id(id).await,
            None => Ok(None),
        }
    }

    /// A user's profile.
    pub async fn profile_of(&self, user_id: i64) -> Result<Option<ProfileRow>, StoreError> {
        let sql = format!("SELECT {PROFILE_COLUMNS} FROM profiles WHERE user_id = ?");
        let row: Option<ProfileTuple> = on_pool!(self, |pool, _d| {
            sqlx::query_as(&sql)
                .bind(user_id)
                .fetch_optional(pool)
                .await?
        });
        row.map(profile_from_tuple).transpose()
    }

    /// Creates a user's profile in `state`; [`StoreError::Duplicate`] when one exists.
    pub async fn insert_profile(
        &self,
        user_id: i64,
        fields: &ProfileFields,
        state: ProfileState,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO profiles (user_id, first_name, last_name, dob, address, \
                           postcode, city, country, metadata, state, created_at_ms, updated_at_ms) \
                           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        on_pool!(self, |pool, _d| {
            sqlx::query(SQL)
                .bind(user_id)
                .bind(&fields.first_name)
                .bind(&fields.last_name)
                .bind(&fields.dob)
                .bind(&fields.address)
                .bind(&fields.postcode)
                .bind(&fields.city)
                .bind(&fields.country)
                .bind(&fields.metadata)
                .bind(state.as_str())
                .bind(now_ms)
                .bind(now_ms)
                .execute(pool)
                .await
                .map_err(StoreError::from_insert)?;
        });
        Ok(())
    }

    /// Moves a profile from `from` to `to`, replacing its fields when given; false (and no
    /// change) when the profile is no longer in `from` (a concurrent change won).
    pub async fn update_profile(
        &self,
        user_id: i64,
        fields: Option<&ProfileFields>,
        from: ProfileState,
        to: ProfileState,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        const STATE: &str =
            "UPDATE profiles SET state = ?, updated_at_ms = ? WHERE user_id = ? AND state = ?";
        const ALL: &str = "UPDATE profiles SET first_name = ?, last_name = ?, dob = ?, \
                           address = ?, postcode = ?, city = ?, country = ?, metadata = ?, \
                           state = ?, updated_at_ms = ? WHERE user_id = ? AND state = ?";
        let affected = on_pool!(self, |pool, _d| {
            let query = match fields {
                Some(f) => sqlx::query(ALL)
                    .bind(&f.first_name)
                    .bind(&f.last_name)
                    .bind(&f.dob)
                    .bind(&f.address)
                    .bind(&f.postcode)
                    .bind(&f.city)
                    .bind(&f.country)
                    .bind(&f.metadata),
                None => sqlx::query(STATE),
            };
            query
                .bind(to.as_str())
                .bind(now_ms)
                .bind(user_id)
                .bind(from.as_str())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected == 1)
    }

    /// A user's labels, by key then scope.
    pub async fn labels_of(&self, user_id: i64) -> Result<Vec<LabelRow>, StoreError> {
        const SQL: &str = "SELECT label_key, scope, label_value, created_at_ms, updated_at_ms \
                           FROM labels WHERE user_id = ? ORDER BY label_key, scope";
        let rows: Vec<LabelTuple> = on_pool!(self, |pool, _d| {
            sqlx::query_as(SQL).bind(user_id).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(label_from_tuple).collect())
    }

    /// Applies label changes and sets the user's level to `level_of` the labels that result,
    /// in one transaction under the user's row lock (two changes at once cannot leave a level
    /// that matches neither). Returns the new level and how many labels were removed.
    pub async fn apply_labels(
        &self,
        user_id: i64,
        changes: &[LabelChange<'_>],
        now_ms: i64,
        level_of: &(dyn Fn(&[LabelRow]) -> i64 + Sync),
    ) -> Result<(i64, u64), StoreError> {
        const DELETE: &str = "DELETE FROM labels WHERE user_id = ? AND label_key = ? AND scope = ?";
        const INSERT: &str = "INSERT INTO labels (user_id, label_key, scope, label_value, \
                              created_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?)";
        const LABELS: &str = "SELECT label_key, scope, label_value, created_at_ms, \
                              updated_at_ms FROM labels WHERE user_id = ?";
        const LEVEL: &str = "UPDATE users SET level = ?, updated_at_ms = ? WHERE id = ?";
        const ACCOUNT: &str = "SELECT account_id FROM accounts WHERE user_id = ?";
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin).await?;
            let lock = format!("SELECT id FROM users WHERE id = ?{}", d.for_update);
            sqlx::query(&lock).bind(user_id).fetch_one(&mut *tx).await?;
            let mut removed = 0u64;
            for change in changes {
                removed += sqlx::query(DELETE)
                    .bind(user_id)
                    .bind(change.key)
                    .bind(change.scope)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if let Some(value) = change.value {
                    sqlx::query(INSERT)
                        .bind(user_id)
                        .bind(change.key)
                        .bind(change.scope)
                        .bind(value)
                        .bind(now_ms)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            let rows: Vec<LabelTuple> = sqlx::query_as(LABELS)
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?;
            let labels: Vec<LabelRow> = rows.into_iter().map(label_from_tuple).collect();
            let level = level_of(&labels);
            assert!(level >= 0, "a level is never negative");
            sqlx::query(LEVEL)
                .bind(level)
                .bind(now_ms)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            let account: Option<i64> = sqlx::query_scalar(ACCOUNT)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(account) = account {
                // The gateways' level gate follows (within one key-feed poll).
                append_event!(tx, account.to_string(), super::KeyEventKind::Level, now_ms);
            }
            tx.commit().await?;
            Ok((level, removed))
        })
    }

    /// Stores a document unless its owner has `documents_max` already; its id, or `None` at
    /// the limit (nothing then changes).
    pub async fn insert_document(
        &self,
        doc: &NewDocument<'_>,
        documents_max: u32,
    ) -> Result<Option<i64>, StoreError> {
        const COUNT: &str = "SELECT COUNT(*) FROM documents WHERE user_id = ?";
        const INSERT: &str = "INSERT INTO documents (user_id, doc_type, doc_number, doc_expire, \
                              content_type, size_bytes, wrapped_key, nonce, ciphertext, \
                              created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        const NEWEST: &str = "SELECT MAX(id) FROM documents WHERE user_id = ?";
        assert!(
            doc.ciphertext.len() as i64 > doc.size_bytes,
            "AES-GCM appends a tag"
        );
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin).await?;
            // The owner's row lock serialises one user's uploads, so the count holds.
            let lock = format!("SELECT id FROM users WHERE id = ?{}", d.for_update);
            sqlx::query(&lock)
                .bind(doc.user_id)
                .fetch_one(&mut *tx)
                .await?;
            let count: i64 = sqlx::query_scalar(COUNT)
                .bind(doc.user_id)
                .fetch_one(&mut *tx)
                .await?;
            if count >= i64::from(documents_max) {
                return Ok(None);
            }
            sqlx::query(INSERT)
                .bind(doc.user_id)
                .bind(doc.doc_type)
                .bind(doc.doc_number)
                .bind(doc.doc_expire)
                .bind(doc.content_type)
                .bind(doc.size_bytes)
                .bind(doc.wrapped_key)
                .bind(doc.nonce)
                .bind(doc.ciphertext)
                .bind(doc.now_ms)
                .execute(&mut *tx)
                .await?;
            let id: Option<i64> = sqlx::query_scalar(NEWEST)
                .bind(doc.user_id)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(id)
        })
    }

    /// A user's documents' metadata, oldest first.
    pub async fn documents_of(&self, user_id: i64) -> Result<Vec<DocumentMeta>, StoreError> {
        let sql =
            format!("SELECT {DOCUMENT_META_COLUMNS} FROM documents WHERE user_id = ? ORDER BY id");
        let rows: Vec<DocumentMetaTuple> = on_pool!(self, |pool, _d| {
            sqlx::query_as(&sql).bind(user_id).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(meta_from_tuple).collect())
    }

    /// The document with this id, whoever owns it (the caller checks).
    pub async fn document(&self, id: i64) -> Result<Option<DocumentRow>, StoreError> {
        let sql = format!(
            "SELECT {DOCUMENT_META_COLUMNS}, wrapped_key, nonce, ciphertext FROM documents \
             WHERE id = ?"
        );
        type Tuple = (
            i64,
            i64,
            String,
            String,
            Option<String>,
            String,
            i64,
            i64,
            String,
            Vec<u8>,
            Vec<u8>,
        );
        let row: Option<Tuple> = on_pool!(self, |pool, _d| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(|r| DocumentRow {
            meta: meta_from_tuple((r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7)),
            wrapped_key: r.8,
            nonce: r.9,
            ciphertext: r.10,
        }))
    }

    /// Records a webhook event id, forgetting those received before `forget_before_ms`;
    /// false when the id was seen already (a replay).
    pub async fn record_webhook_event(
        &self,
        event_id: &str,
        now_ms: i64,
        forget_before_ms: i64,
    ) -> Result<bool, StoreError> {
        const FORGET: &str = "DELETE FROM kyc_webhook_events WHERE received_at_ms < ?";
        const INSERT: &str =
            "INSERT INTO kyc_webhook_events (event_id, received_at_ms) VALUES (?, ?)";
        assert!(forget_before_ms <= now_ms);
        on_pool!(self, |pool, _d| {
            sqlx::query(FORGET)
                .bind(forget_before_ms)
                .execute(pool)
                .await?;
            match sqlx::query(INSERT)
                .bind(event_id)
                .bind(now_ms)
                .execute(pool)
                .await
                .map_err(StoreError::from_insert)
            {
                Ok(_) => Ok(true),
                Err(StoreError::Duplicate) => Ok(false),
                Err(error) => Err(error),
            }
        })
    }

    /// Forgets a webhook event id (its call was not applied: a retry must be accepted).
    pub async fn forget_webhook_event(&self, event_id: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM kyc_webhook_events WHERE event_id = ?";
        on_pool!(self, |pool, _d| {
            sqlx::query(SQL).bind(event_id).execute(pool).await?;
        });
        Ok(())
    }

    /// The role -> permission table, as stored: (role, action) rows.
    pub async fn role_permissions(&self) -> Result<Vec<(String, String)>, StoreError> {
        const SQL: &str = "SELECT role, action FROM permissions ORDER BY role, action";
        Ok(on_pool!(self, |pool, _d| {
            sqlx::query_as(SQL).fetch_all(pool).await?
        }))
    }
}
