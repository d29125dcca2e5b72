//! Archives of personal data, isolated per person. `passme archive create` writes every person's
//! data (the same records as their own export) to one file, each person's part encrypted with
//! their own data key (ChaCha20-Poly1305) and labelled with a keyed hash of their id, never the
//! id. The data keys are kept in the database wrapped with the master key. Erasing a person, or
//! closing their account, destroys their key: their records in every archive become unreadable
//! ("isolated") and stay so until the clean-up (`passme archive clean`) deletes the expired file.
//!
//! Only two routines may open an archive: the clean-up, which counts what each expired archive
//! still holds before removing it, and the export for a legal hold on the person, which reads
//! that one person's record. Any other attempt is refused and audited.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use passme_policy::{Action, Policy};
use passme_store::{AccountId, ArchiveRow, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;

use crate::CoreError;
use crate::audit::{AuditEvent, AuditLog};
use crate::clock::{SharedClock, period_before};
use crate::crypto::{self, CHACHA20_POLY1305};
use crate::rights::access::Export;

/// The declared rule whose clean-up period bounds an archive's life.
pub const RULE: &str = "retention.rights.backups";
const FORMAT: &str = "passme-archive/1";
/// Accounts read per page while an archive is written.
const PAGE: i64 = 500;

/// One person's record in an archive file.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    person: String,
    nonce: String,
    data: String,
}

/// What a new archive holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Created {
    pub id: String,
    pub persons: i64,
    pub bytes: i64,
    pub expires_at: i64,
    pub path: PathBuf,
}

/// What the clean-up found in one expired archive before removing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cleaned {
    pub id: String,
    /// Records whose person's key is gone: unreadable since their erasure or closure.
    pub isolated: i64,
    /// Records still readable when the archive expired.
    pub readable: i64,
}

#[derive(Clone)]
pub struct Archives {
    store: Store,
    clock: SharedClock,
    audit: AuditLog,
    master: [u8; 32],
    dir: PathBuf,
    /// How long an archive lives: the declared clean-up period.
    keep: passme_policy::Period,
}

impl std::fmt::Debug for Archives {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archives").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn broken(what: &'static str, cause: impl std::fmt::Display) -> CoreError {
    CoreError::broken(what, cause.to_string())
}

fn seal(key: &[u8; 32], context: &[u8], plain: &[u8]) -> ([u8; 12], Vec<u8>) {
    crypto::seal(&CHACHA20_POLY1305, key, context, plain)
}

fn open(key: &[u8; 32], context: &[u8], nonce: [u8; 12], sealed: Vec<u8>) -> Option<Vec<u8>> {
    crypto::open(&CHACHA20_POLY1305, key, context, nonce, sealed)
}

impl Archives {
    /// Refuses a policy that does not declare the archive rule with its clean-up period.
    pub fn new(store: Store, clock: SharedClock, policy: &Policy, master: &[u8; 32], dir: PathBuf) -> Result<Archives, CoreError> {
        let keep = match policy.retention.iter().find(|r| r.id == RULE).map(|r| &r.action) {
            Some(Action::Archive { cleanup }) => *cleanup,
            _ => return Err(CoreError::broken("archives", format!("the policy declares no archive rule {RULE} with a clean-up period"))),
        };
        let audit = AuditLog::new(store.clone(), clock.clone());
        Ok(Archives { store, clock, audit, master: *master, dir, keep })
    }

    /// The keyed hash that labels a person's record: without the master key it says nothing.
    fn label(&self, account_id: &AccountId) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.master).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(b"archive-person:");
        mac.update(account_id.as_str().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The person's data key: made and stored (wrapped) on first use.
    async fn key_for_writing(&self, account_id: &AccountId) -> Result<[u8; 32], CoreError> {
        if let Some(key) = self.unwrap_key(account_id).await? {
            return Ok(key);
        }
        let fresh: [u8; 32] = rand::random();
        let (nonce, sealed) = seal(&self.master, account_id.as_str().as_bytes(), &fresh);
        let wrapped = format!("{}{}", hex::encode(nonce), hex::encode(sealed));
        self.store.put_person_key(account_id, &wrapped, self.clock.now_ms()).await?;
        // Another process may have stored its key first: use the one that is kept.
        self.unwrap_key(account_id).await?.ok_or_else(|| broken("archives", "a stored key cannot be read back"))
    }

    /// The person's data key, or `None` once it is destroyed.
    async fn unwrap_key(&self, account_id: &AccountId) -> Result<Option<[u8; 32]>, CoreError> {
        let Some(wrapped) = self.store.person_key(account_id).await? else { return Ok(None) };
        let bytes = hex::decode(&wrapped).map_err(|e| broken("archives: a wrapped key", e))?;
        if bytes.len() < 12 {
            return Err(broken("archives: a wrapped key", "too short"));
        }
        let nonce: [u8; 12] = bytes[..12].try_into().unwrap_or_else(|_| unreachable!("12 bytes"));
        let plain = open(&self.master, account_id.as_str().as_bytes(), nonce, bytes[12..].to_vec())
            .ok_or_else(|| broken("archives: a wrapped key", "does not open with this master key"))?;
        let key: [u8; 32] = plain.try_into().map_err(|_| broken("archives: a wrapped key", "not 32 bytes"))?;
        Ok(Some(key))
    }

    fn path_of(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Writes every person's data to a new archive, a page of accounts at a time (memory stays
    /// flat), and registers it with its expiry. A file that was being written when the process
    /// died is never registered, and the next clean-up removes it.
    pub async fn create(&self, actor: &str) -> Result<Created, CoreError> {
        let now = self.clock.now_ms();
        let id = format!("arc_{}", hex::encode(rand::random::<[u8; 12]>()));
        let file = format!("{id}.pma");
        std::fs::create_dir_all(&self.dir).map_err(|e| broken("archives: the folder", e))?;
        let partial = self.path_of(&format!("{file}.partial"));
        let mut out = BufWriter::new(std::fs::File::create(&partial).map_err(|e| broken("archives: a new file", e))?);
        let header = json!({ "format": FORMAT, "id": id, "created_at": now });
        writeln!(out, "{header}").map_err(|e| broken("archives: writing", e))?;
        let mut persons = 0;
        let mut pages = AccountPages::default();
        loop {
            let page = pages.next(&self.store).await?;
            if page.is_empty() {
                break;
            }
            for account_id in &page {
                let key = self.key_for_writing(account_id).await?;
                let plain = Export::of(&self.store, account_id, now).await?.json();
                let label = self.label(account_id);
                let (nonce, sealed) = seal(&key, label.as_bytes(), plain.as_bytes());
                let record =
                    Record { person: label, nonce: hex::encode(nonce), data: base64::engine::general_purpose::STANDARD.encode(sealed) };
                let line = serde_json::to_string(&record).map_err(|e| broken("archives: a record", e))?;
                writeln!(out, "{line}").map_err(|e| broken("archives: writing", e))?;
                persons += 1;
            }
        }
        let handle = out.into_inner().map_err(|e| broken("archives: writing", e))?;
        handle.sync_all().map_err(|e| broken("archives: syncing", e))?;
        let bytes = handle.metadata().map(|m| m.len() as i64).unwrap_or(0);
        let path = self.path_of(&file);
        std::fs::rename(&partial, &path).map_err(|e| broken("archives: naming the file", e))?;
        // The clean-up period counts from now: the archive expires when that much time has passed.
        let expires_at = now + (now - period_before(now, &self.keep));
        let row = ArchiveRow { id: id.clone(), created_at: now, expires_at, file, persons, bytes, cleaned_at: None };
        self.store.insert_archive(&row).await?;
        self.audit
            .record(AuditEvent {
                actor,
                action: "archive.created",
                subject: &id,
                details: json!({ "persons": persons, "expires_at": expires_at }),
            })
            .await?;
        Ok(Created { id, persons, bytes, expires_at, path })
    }

    /// The archives not yet cleaned, oldest first.
    pub async fn list(&self) -> Result<Vec<ArchiveRow>, CoreError> {
        Ok(self.store.archives().await?)
    }

    /// The export for a legal hold: the held person's record from one archive, decrypted. Refused
    /// (and audited) unless `hold` is a hold in force on a person; `None` when their key is
    /// already destroyed or the archive holds no record of them.
    pub async fn open_for_hold(&self, archive_id: &str, hold: &str, actor: &str) -> Result<Option<String>, CoreError> {
        let holds = self.store.legal_holds_in_force(self.clock.now_ms()).await?;
        let person = holds.into_iter().find(|h| h.id == hold).and_then(|h| h.account_id);
        let Some(account_id) = person else {
            self.audit
                .record(AuditEvent {
                    actor,
                    action: "archive.open_refused",
                    subject: archive_id,
                    details: json!({ "hold": hold, "why": "no legal hold on a person in force with that id" }),
                })
                .await?;
            return Err(CoreError::Forbidden);
        };
        let archive = self.live(archive_id).await?;
        self.audit
            .record(AuditEvent {
                actor,
                action: "archive.opened",
                subject: archive_id,
                details: json!({ "hold": hold, "person": format!("account:{account_id}") }),
            })
            .await?;
        let label = self.label(&account_id);
        let Some(record) = self.records(&archive)?.into_iter().find(|r| r.person == label) else { return Ok(None) };
        let Some(key) = self.unwrap_key(&account_id).await? else { return Ok(None) };
        Ok(decrypt(&key, &record).map(|plain| String::from_utf8_lossy(&plain).into_owned()))
    }

    async fn live(&self, archive_id: &str) -> Result<ArchiveRow, CoreError> {
        match self.store.archive(archive_id).await? {
            Some(row) if row.cleaned_at.is_none() => Ok(row),
            _ => Err(CoreError::NotFound { code: "archive_unknown" }),
        }
    }

    fn records(&self, archive: &ArchiveRow) -> Result<Vec<Record>, CoreError> {
        let file = std::fs::File::open(self.path_of(&archive.file)).map_err(|e| broken("archives: opening a file", e))?;
        let mut records = Vec::new();
        for line in std::io::BufReader::new(file).lines().skip(1) {
            let line = line.map_err(|e| broken("archives: reading", e))?;
            records.push(serde_json::from_str(&line).map_err(|e| broken("archives: a record", e))?);
        }
        Ok(records)
    }

    /// Removes every expired archive (and any file no archive is registered for, left by a
    /// creation that died), counting first how many of its records are isolated. Safe to run
    /// from several processes at once: each archive is cleaned once.
    pub async fn clean(&self, actor: &str) -> Result<Vec<Cleaned>, CoreError> {
        let now = self.clock.now_ms();
        let mut cleaned = Vec::new();
        // Labels of the persons whose keys still exist, to tell readable records from isolated.
        let mut keyed = std::collections::HashSet::new();
        let mut pages = AccountPages::default();
        loop {
            let page = pages.next(&self.store).await?;
            if page.is_empty() {
                break;
            }
            for account_id in &page {
                if self.store.person_key(account_id).await?.is_some() {
                    keyed.insert(self.label(account_id));
                }
            }
        }
        for archive in self.store.archives().await? {
            if archive.expires_at > now {
                continue;
            }
            let records = self.records(&archive).unwrap_or_default();
            let readable = records.iter().filter(|r| keyed.contains(&r.person)).count() as i64;
            let isolated = records.len() as i64 - readable;
            if !self.store.mark_archive_cleaned(&archive.id, now).await? {
                continue;
            }
            match std::fs::remove_file(self.path_of(&archive.file)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(broken("archives: removing a file", e)),
            }
            self.audit
                .record(AuditEvent {
                    actor,
                    action: "archive.cleaned",
                    subject: &archive.id,
                    details: json!({ "isolated": isolated, "readable": readable }),
                })
                .await?;
            cleaned.push(Cleaned { id: archive.id, isolated, readable });
        }
        self.remove_orphans().await?;
        Ok(cleaned)
    }

    /// Files in the folder no live archive accounts for.
    async fn remove_orphans(&self) -> Result<(), CoreError> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Ok(()) };
        let live: std::collections::HashSet<String> = self.store.archives().await?.into_iter().map(|a| a.file).collect();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // A file still being written is younger than an hour; leave it to its writer.
            let young = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() < 3600));
            if name.starts_with("arc_") && !live.contains(&name) && !young {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}

/// Every account id, a page at a time, in id order.
#[derive(Default)]
struct AccountPages {
    after: String,
}

impl AccountPages {
    async fn next(&mut self, store: &Store) -> Result<Vec<AccountId>, CoreError> {
        let page = store.account_ids_after(&self.after, PAGE).await?;
        if let Some(last) = page.last() {
            self.after = last.as_str().to_string();
        }
        Ok(page)
    }
}

fn decrypt(key: &[u8; 32], record: &Record) -> Option<Vec<u8>> {
    let nonce: [u8; 12] = hex::decode(&record.nonce).ok()?.try_into().ok()?;
    let sealed = base64::engine::general_purpose::STANDARD.decode(&record.data).ok()?;
    open(key, record.person.as_bytes(), nonce, sealed)
}
