//! The engine's records: organizations, their three environments, and destinations.
//!
//! Plain SQLite behind a mutex: these are management operations, a few per second at most, so
//! they do not need the inbox's group commit. Secrets arrive here already sealed (the engine
//! holds the master key); this module only stores bytes.

use crate::{StoreError, now_millis, schema};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The file name of the engine database inside its `data_dir`.
pub const ENGINE_FILE: &str = "engine.db";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub alert_email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentRecord {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    /// `Development`, `Staging` or `Production`.
    pub flag: String,
}

/// A destination record. `verification_token` is sealed (ciphertext), never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationRecord {
    pub id: String,
    pub organization_id: String,
    pub environment_id: String,
    pub name: String,
    pub data_format: String,
    pub endpoint: Option<String>,
    pub verification_token: Option<Vec<u8>>,
    pub verification_method: String,
    pub auth_credential: Option<String>,
    pub verified_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The engine's store. Cheap to clone.
#[derive(Clone)]
pub struct EngineStore {
    conn: Arc<Mutex<Connection>>,
}

const DESTINATION_COLUMNS: &str = "id, organization_id, environment_id, name, data_format,
    endpoint, verification_token, verification_method, auth_credential, verified_at, created_at,
    updated_at";

fn destination(row: &Row<'_>) -> rusqlite::Result<DestinationRecord> {
    Ok(DestinationRecord {
        id: row.get(0)?,
        organization_id: row.get(1)?,
        environment_id: row.get(2)?,
        name: row.get(3)?,
        data_format: row.get(4)?,
        endpoint: row.get(5)?,
        verification_token: row.get(6)?,
        verification_method: row.get(7)?,
        auth_credential: row.get(8)?,
        verified_at: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
    })
}

fn environment(row: &Row<'_>) -> rusqlite::Result<EnvironmentRecord> {
    Ok(EnvironmentRecord {
        id: row.get(0)?,
        organization_id: row.get(1)?,
        name: row.get(2)?,
        flag: row.get(3)?,
    })
}

impl EngineStore {
    /// Opens (creating and migrating) `data_dir/engine.db`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(ENGINE_FILE);
        let mut conn = schema::open(&path)?;
        schema::migrate(&mut conn, &path, schema::ENGINE_MIGRATIONS)?;
        Ok(EngineStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&mut conn)?)
    }

    /// The organization called `name`, created with its three environments on first use.
    pub fn ensure_organization(&self, name: &str) -> Result<Organization, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let existing = tx
                .query_row(
                    "SELECT id, name, alert_email FROM organizations WHERE name = ?1",
                    params![name],
                    |r| {
                        Ok(Organization {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            alert_email: r.get(2)?,
                        })
                    },
                )
                .optional()?;
            let organization = match existing {
                Some(o) => o,
                None => {
                    let o = Organization {
                        id: uuid::Uuid::new_v4().to_string(),
                        name: name.to_owned(),
                        alert_email: None,
                    };
                    tx.execute(
                        "INSERT INTO organizations (id, name, created_at) VALUES (?1, ?2, ?3)",
                        params![o.id, o.name, now_millis()],
                    )?;
                    for flag in ["Development", "Staging", "Production"] {
                        tx.execute(
                            "INSERT INTO environments (id, organization_id, name, flag)
                             VALUES (?1, ?2, ?3, ?3)",
                            params![uuid::Uuid::new_v4().to_string(), o.id, flag],
                        )?;
                    }
                    o
                }
            };
            tx.commit()?;
            Ok(organization)
        })
    }

    pub fn organizations(&self) -> Result<Vec<Organization>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare("SELECT id, name, alert_email FROM organizations ORDER BY created_at")?;
            let rows = stmt.query_map([], |r| {
                Ok(Organization {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    alert_email: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    /// The organization's environments, Development first.
    pub fn environments(
        &self,
        organization_id: &str,
    ) -> Result<Vec<EnvironmentRecord>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, organization_id, name, flag FROM environments WHERE organization_id = ?1
                 ORDER BY CASE flag WHEN 'Development' THEN 0 WHEN 'Staging' THEN 1 ELSE 2 END",
            )?;
            let rows = stmt.query_map(params![organization_id], environment)?;
            rows.collect()
        })
    }

    pub fn environment(&self, id: &str) -> Result<Option<EnvironmentRecord>, StoreError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT id, organization_id, name, flag FROM environments WHERE id = ?1",
                params![id],
                environment,
            )
            .optional()
        })
    }

    pub fn insert_destination(&self, d: &DestinationRecord) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                &format!(
                    "INSERT INTO destinations ({DESTINATION_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ),
                params![
                    d.id,
                    d.organization_id,
                    d.environment_id,
                    d.name,
                    d.data_format,
                    d.endpoint,
                    d.verification_token,
                    d.verification_method,
                    d.auth_credential,
                    d.verified_at,
                    d.created_at,
                    d.updated_at
                ],
            )?;
            Ok(())
        })
    }

    /// Replaces every mutable field of an existing destination. Returns false if it is gone.
    pub fn update_destination(&self, d: &DestinationRecord) -> Result<bool, StoreError> {
        self.with(|conn| {
            let changed = conn.execute(
                "UPDATE destinations SET name = ?2, data_format = ?3, endpoint = ?4,
                    verification_token = ?5, verification_method = ?6, auth_credential = ?7,
                    verified_at = ?8, updated_at = ?9
                 WHERE id = ?1",
                params![
                    d.id,
                    d.name,
                    d.data_format,
                    d.endpoint,
                    d.verification_token,
                    d.verification_method,
                    d.auth_credential,
                    d.verified_at,
                    d.updated_at
                ],
            )?;
            Ok(changed == 1)
        })
    }

    pub fn destination(&self, id: &str) -> Result<Option<DestinationRecord>, StoreError> {
        self.with(|conn| {
            conn.query_row(
                &format!("SELECT {DESTINATION_COLUMNS} FROM destinations WHERE id = ?1"),
                params![id],
                destination,
            )
            .optional()
        })
    }

    pub fn destinations(&self, environment_id: &str) -> Result<Vec<DestinationRecord>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {DESTINATION_COLUMNS} FROM destinations WHERE environment_id = ?1
                 ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map(params![environment_id], destination)?;
            rows.collect()
        })
    }

    /// Whether `endpoint` is used by a destination of another organization.
    pub fn endpoint_taken_elsewhere(
        &self,
        endpoint: &str,
        organization_id: &str,
    ) -> Result<bool, StoreError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM destinations
                                WHERE endpoint = ?1 AND organization_id <> ?2)",
                params![endpoint, organization_id],
                |r| r.get(0),
            )
        })
    }

    /// Deletes a destination. Returns false if it did not exist.
    pub fn delete_destination(&self, id: &str) -> Result<bool, StoreError> {
        self.with(|conn| {
            Ok(conn.execute("DELETE FROM destinations WHERE id = ?1", params![id])? == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(org: &Organization, env: &EnvironmentRecord, endpoint: &str) -> DestinationRecord {
        DestinationRecord {
            id: uuid::Uuid::new_v4().to_string(),
            organization_id: org.id.clone(),
            environment_id: env.id.clone(),
            name: "Acme".into(),
            data_format: "JSON".into(),
            endpoint: Some(endpoint.into()),
            verification_token: Some(vec![1, 2, 3]),
            verification_method: "POST".into(),
            auth_credential: None,
            verified_at: None,
            created_at: 1,
            updated_at: 1,
        }
    }

    #[test]
    fn organizations_get_three_environments_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = EngineStore::open(dir.path()).unwrap();
        let org = store.ensure_organization("Acme Health").unwrap();
        assert_eq!(store.ensure_organization("Acme Health").unwrap(), org);
        let flags: Vec<_> = store
            .environments(&org.id)
            .unwrap()
            .into_iter()
            .map(|e| e.flag)
            .collect();
        assert_eq!(flags, ["Development", "Staging", "Production"]);
        assert_eq!(store.organizations().unwrap().len(), 1);
    }

    #[test]
    fn destinations_round_trip_and_endpoints_belong_to_one_organization() {
        let dir = tempfile::tempdir().unwrap();
        let store = EngineStore::open(dir.path()).unwrap();
        let a = store.ensure_organization("A").unwrap();
        let b = store.ensure_organization("B").unwrap();
        let env_a = store.environments(&a.id).unwrap().remove(0);
        let mut d = record(&a, &env_a, "https://x.example/hook");
        store.insert_destination(&d).unwrap();
        assert_eq!(store.destination(&d.id).unwrap().unwrap(), d);
        assert!(
            !store
                .endpoint_taken_elsewhere("https://x.example/hook", &a.id)
                .unwrap()
        );
        assert!(
            store
                .endpoint_taken_elsewhere("https://x.example/hook", &b.id)
                .unwrap()
        );
        d.verified_at = Some(5);
        assert!(store.update_destination(&d).unwrap());
        assert_eq!(store.destinations(&env_a.id).unwrap(), vec![d.clone()]);
        assert!(store.delete_destination(&d.id).unwrap());
        assert!(!store.delete_destination(&d.id).unwrap());
        assert!(store.destination(&d.id).unwrap().is_none());
    }
}
