//! One member of staff by id (the console's check of every request) or by address (whoever
//! views a chronology): staff names and
//! addresses are kept in clear (the school's published staff list), so this opens nothing and
//! reads three short, keyed rows instead of the directory.

use super::{Result, Store, on_pool};
use crate::directory::{Role, Staff};
use sqlx::Row;

impl Store {
    /// The member of staff with address `email` (any case; active or not), as [`Store::staff_member`].
    pub async fn staff_by_email(&self, email: &str) -> Result<Option<Staff>> {
        let email = email.trim().to_ascii_lowercase();
        let id: Option<i64> = on_pool!(self, |p| {
            sqlx::query_scalar("SELECT staff_id FROM staff_emails WHERE email = $1").bind(&email).fetch_optional(p).await?
        });
        match id {
            Some(id) => self.staff_member(id).await,
            None => Ok(None),
        }
    }

    /// Member of staff `id` (active or not) with their addresses and roles; None if unknown.
    pub async fn staff_member(&self, id: i64) -> Result<Option<Staff>> {
        on_pool!(self, |p| {
            let Some(r) = sqlx::query("SELECT id, first_name, last_name, house, tutor_group, active FROM staff WHERE id = $1")
                .bind(id)
                .fetch_optional(p)
                .await?
            else {
                return Ok(None);
            };
            let emails: Vec<String> =
                sqlx::query_scalar("SELECT email FROM staff_emails WHERE staff_id = $1 ORDER BY position").bind(id).fetch_all(p).await?;
            let mut roles: Vec<Role> = sqlx::query_scalar::<_, String>("SELECT role FROM staff_roles WHERE staff_id = $1 ORDER BY role")
                .bind(id)
                .fetch_all(p)
                .await?
                .iter()
                .filter_map(|r| Role::parse(r))
                .collect();
            roles.sort();
            Ok(Some(Staff {
                id,
                emails,
                first_name: r.try_get("first_name")?,
                last_name: r.try_get("last_name")?,
                roles,
                house: r.try_get("house")?,
                tutor_group: r.try_get("tutor_group")?,
                active: r.try_get("active")?,
            }))
        })
    }
}
