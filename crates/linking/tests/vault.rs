//! The token vault on both engines: blobs bound to their place, clean errors for every broken
//! blob, key rotation with a rewrap that survives a crash, and a fleet that sees a rotation at once.

use passme_core::clock;
use passme_linking::vault::{BlobPlace, Vault, VaultError};
use passme_policy::proves;
use passme_store::{AccountId, Store, TokenRow};
use passme_testkit::each_engine;
use secrecy::ExposeSecret;

const MASTER: [u8; 32] = [9; 32];

fn place<'a>(row: &'a str, user: &'a str) -> BlobPlace<'a> {
    BlobPlace { table: "linked_tokens", column: "refresh_token", row, user, provider: "example" }
}

/// `n` token rows, each sealed under the vault's active key; the plain refresh tokens.
async fn seed(store: &Store, vault: &Vault, n: usize) -> Vec<(String, String)> {
    let key = vault.active().await.expect("key");
    let mut plain = Vec::new();
    for i in 0..n {
        let link = format!("lnk_{i:05}");
        let account = AccountId::new(format!("acc_{i:05}"));
        let token = format!("refresh-token-{i}");
        let blob = |column| vault.seal(&key, Vault::token_place(&link, &account, "example", column), &token);
        store
            .put_tokens(&TokenRow {
                link_id: link.clone(),
                account_id: account.clone(),
                provider: "example".into(),
                key_id: key.id.clone(),
                id_token: None,
                access_token: Some(blob("access_token")),
                refresh_token: Some(blob("refresh_token")),
                access_expires_at: None,
                updated_at: 1,
            })
            .await
            .expect("stored");
        plain.push((link, token));
    }
    plain
}

async fn assert_all_open(store: &Store, vault: &Vault, plain: &[(String, String)], key_id: &str) {
    for (link, token) in plain {
        let row = store.tokens(link).await.expect("tokens").expect("row");
        assert_eq!(row.key_id, key_id, "{link} is under {key_id}");
        let place = Vault::token_place(&row.link_id, &row.account_id, &row.provider, "refresh_token");
        let opened = vault.open(place, row.refresh_token.as_deref().expect("blob")).await.expect("opens");
        assert_eq!(opened.expose_secret(), token);
        assert_eq!(Vault::key_id_of(row.refresh_token.as_deref().expect("blob")), Some(key_id));
    }
}

#[tokio::test]
async fn a_blob_opens_only_in_its_own_place_and_broken_blobs_fail_cleanly() {
    proves!("security.tokens_encrypted");
    for db in each_engine().await {
        let vault = Vault::new(db.store.clone(), clock::system(), &MASTER);
        let key = vault.active().await.expect("key");
        let blob = vault.seal(&key, place("lnk_a", "acc_a"), "the refresh token");
        assert!(blob.starts_with(&format!("v1:{}:", key.id)) && blob.split(':').count() == 4, "{blob}");
        assert!(!blob.contains("the refresh token"));
        assert_eq!(vault.open(place("lnk_a", "acc_a"), &blob).await.expect("opens").expose_secret(), "the refresh token");
        // A fresh nonce each time: the same token seals differently.
        assert_ne!(vault.seal(&key, place("lnk_a", "acc_a"), "the refresh token"), blob);

        // Moved to another row, person, column or provider: does not open.
        for elsewhere in [
            place("lnk_b", "acc_a"),
            place("lnk_a", "acc_b"),
            BlobPlace { column: "access_token", ..place("lnk_a", "acc_a") },
            BlobPlace { provider: "other", ..place("lnk_a", "acc_a") },
            BlobPlace { table: "partner_profiles", ..place("lnk_a", "acc_a") },
        ] {
            assert!(matches!(vault.open(elsewhere, &blob).await, Err(VaultError::DoesNotOpen)), "{elsewhere:?}");
        }
        // An unknown key id.
        let parts: Vec<&str> = blob.split(':').collect();
        let unknown = format!("v1:k999:{}:{}", parts[2], parts[3]);
        assert!(matches!(vault.open(place("lnk_a", "acc_a"), &unknown).await, Err(VaultError::UnknownKey(id)) if id == "k999"));
        // Every truncation of the blob fails with an error, never a panic or a wrong value.
        for cut in 0..blob.len() {
            let result = vault.open(place("lnk_a", "acc_a"), &blob[..cut]).await;
            assert!(matches!(result, Err(VaultError::Malformed | VaultError::DoesNotOpen)), "cut at {cut}: {:?}", result.map(|_| ()));
        }
        // A flipped bit in the ciphertext.
        let mut tampered = blob.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert!(matches!(vault.open(place("lnk_a", "acc_a"), &tampered).await, Err(VaultError::DoesNotOpen)));
        // Another master key cannot read the ring.
        let stranger = Vault::new(db.store.clone(), clock::system(), &[1; 32]);
        assert!(matches!(stranger.open(place("lnk_a", "acc_a"), &blob).await, Err(VaultError::BadKeyRing)));
        assert_eq!(VaultError::Malformed.code(), "vault_blob_malformed");
    }
}

#[tokio::test]
async fn rotation_re_encrypts_every_blob_and_a_crash_in_the_middle_loses_nothing() {
    for db in each_engine().await {
        let store = &db.store;
        let vault = Vault::new(store.clone(), clock::system(), &MASTER);
        let plain = seed(store, &vault, 1200).await;
        assert_all_open(store, &vault, &plain, "k1").await;

        // A second instance of the fleet encrypts with the new key as soon as it exists.
        let other_instance = Vault::new(store.clone(), clock::system(), &MASTER);
        assert_eq!(other_instance.active().await.expect("key").id, "k1");
        assert_eq!(vault.add_rotation_key().await.expect("rotated"), "k2");
        assert_eq!(other_instance.active().await.expect("key").id, "k2");

        // The rewrap "crashes" (its task is aborted) part-way.
        let crashing = vault.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            crashing
                .rewrap(100, move |done, _| {
                    let _ = tx.send(done);
                })
                .await
        });
        while let Some(done) = rx.recv().await {
            if done >= 300 {
                break;
            }
        }
        task.abort();
        let _ = task.await;
        let counts = store.token_rows_by_key().await.expect("counts");
        let under = |key: &str| counts.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n);
        assert!(under("k1") > 0 && under("k2") >= 300, "part-way: {counts:?}");
        // Every blob still opens, whichever key it is under.
        for (link, token) in &plain {
            let row = store.tokens(link).await.expect("tokens").expect("row");
            let place = Vault::token_place(&row.link_id, &row.account_id, &row.provider, "refresh_token");
            assert_eq!(vault.open(place, row.refresh_token.as_deref().expect("blob")).await.expect("opens").expose_secret(), token);
        }
        // Run again: it finishes what is left, and reports it.
        let mut reports = Vec::new();
        let done = vault.rewrap(500, |d, t| reports.push((d, t))).await.expect("rewrap");
        assert_eq!(done.rows as i64, under("k1"));
        assert_eq!(reports.first().map(|r| r.1), Some(under("k1") as u64), "the progress knows the total");
        assert_all_open(store, &vault, &plain, "k2").await;
        assert_eq!(store.token_rows_by_key().await.expect("counts"), vec![("k2".to_string(), 1200)]);
        // Nothing left: a third run does nothing.
        assert_eq!(vault.rewrap(500, |_, _| {}).await.expect("rewrap").rows, 0);
    }
}

#[tokio::test]
async fn two_instances_starting_on_an_empty_ring_agree_on_one_first_key() {
    for db in each_engine().await {
        let a = Vault::new(db.store.clone(), clock::system(), &MASTER);
        let b = Vault::new(db.store.clone(), clock::system(), &MASTER);
        let (ka, kb) = tokio::join!(a.active(), b.active());
        assert_eq!(ka.expect("a").id, kb.expect("b").id);
        assert_eq!(db.store.vault_keys().await.expect("keys").len(), 1);
        let sealed = a.seal(&a.active().await.expect("key"), place("l", "u"), "x");
        assert_eq!(b.open(place("l", "u"), &sealed).await.expect("b opens a's blob").expose_secret(), "x");
    }
}

#[tokio::test]
async fn a_refresh_lease_is_refused_on_a_version_another_refresh_replaced() {
    for db in each_engine().await {
        let store = &db.store;
        let vault = Vault::new(store.clone(), clock::system(), &MASTER);
        seed(store, &vault, 1).await;
        let read = store.tokens("lnk_00000").await.expect("tokens").expect("row");
        // Another instance refreshed meanwhile: new tokens, a new version, the lease released.
        store.put_tokens(&TokenRow { updated_at: read.updated_at + 1, ..read.clone() }).await.expect("refreshed");
        assert!(!store.take_refresh_lease("lnk_00000", read.updated_at, 10, 20).await.expect("lease"), "stale version");
        let fresh = store.tokens("lnk_00000").await.expect("tokens").expect("row");
        assert!(store.take_refresh_lease("lnk_00000", fresh.updated_at, 10, 20).await.expect("lease"));
        assert!(!store.take_refresh_lease("lnk_00000", fresh.updated_at, 15, 25).await.expect("lease"), "held until 20");
        assert!(store.take_refresh_lease("lnk_00000", fresh.updated_at, 21, 31).await.expect("lease"), "expired leases can be taken");
    }
}
