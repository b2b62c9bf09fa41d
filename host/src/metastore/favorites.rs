//! Users' favorite DAGs (Airflow 3's "favorite"): one empty record per tenant,
//! DAG and user, so a DAG's favorites go with a prefix delete when the DAG is
//! deleted, and a user's favorites in a tenant are one range read.

use super::{DAG_FAVORITES, Metastore, Result, key, prefix_range};
use redb::ReadableDatabase;
use std::collections::HashSet;

impl Metastore {
    /// Marks DAG `dag_id` a favorite of `user`; false if it already was.
    pub fn favorite_dag(&self, tenant: &str, dag_id: &str, user: &str) -> Result<bool> {
        let txn = self.db.begin_write()?;
        let added = txn
            .open_table(DAG_FAVORITES)?
            .insert(key(&[tenant, dag_id, user]).as_str(), [].as_slice())?
            .is_none();
        txn.commit()?;
        Ok(added)
    }

    /// Takes DAG `dag_id` off `user`'s favorites; false if it was not one.
    pub fn unfavorite_dag(&self, tenant: &str, dag_id: &str, user: &str) -> Result<bool> {
        self.delete_raw(DAG_FAVORITES, &key(&[tenant, dag_id, user]))
    }

    pub fn is_favorite(&self, tenant: &str, dag_id: &str, user: &str) -> Result<bool> {
        Ok(self
            .get_raw(DAG_FAVORITES, &key(&[tenant, dag_id, user]))?
            .is_some())
    }

    /// The ids of `user`'s favorite DAGs in `tenant`: one range read over the
    /// tenant's favorites (a handful per user and DAG, never history-sized).
    pub fn favorite_dags(&self, tenant: &str, user: &str) -> Result<HashSet<String>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(DAG_FAVORITES)?;
        let (start, end) = prefix_range(tenant);
        let mut out = HashSet::new();
        for item in t.range(start.as_str()..end.as_str())? {
            let (k, _) = item?;
            if let Some((dag_id, who)) = k.value()[start.len()..].split_once('\0')
                && who == user
            {
                out.insert(dag_id.to_owned());
            }
        }
        Ok(out)
    }
}

/// Drops a deleted user's favorites in every tenant, inside the deletion's
/// transaction, so a user created later under the name starts with none.
pub(super) fn forget_user(txn: &redb::WriteTransaction, user: &str) -> Result<()> {
    txn.open_table(DAG_FAVORITES)?
        .retain(|k, _| k.rsplit_once('\0').is_none_or(|(_, who)| who != user))?;
    Ok(())
}
