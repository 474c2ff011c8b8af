//! The reads every engine does alike: what is eligible (the dry run, a
//! capped sweep's last job, the backlog, the forecast), the audit trail and
//! the run records, the held jobs. Each is one statement of the engine's
//! set, bound and decoded here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Arg, Db, Driver, On, Purpose, cutoff_args, decode, limit, shift_args};
use crate::model::{AuditEntry, RunRecord};
use crate::policy::{Cutoffs, PerPolicy, RULES, Retentions, SortKey, retention_micros, start_of_time};
use crate::store::records::{
    AuditSearch, AuditWindow, BatchRequest, Candidate, EligibleJobs, ForecastCount, ForecastWindow, HeldJob, HeldKey,
};
use crate::store::{EligibleStore, PageStore, StoreError, TrailStore};

/// Runs a statement that returns at most one row for `purpose`.
async fn fetch_optional<D: Driver>(
    driver: &D,
    purpose: Purpose,
    sql: &'static str,
    args: &[Arg<'_>],
) -> Result<Option<<D::Db as sqlx::Database>::Row>, StoreError> {
    D::Db::fetch_optional(On::Pool(driver.pool(purpose)), D::Db::query(sql, args)).await
}

async fn fetch_all<D: Driver>(
    driver: &D,
    purpose: Purpose,
    sql: &'static str,
    args: &[Arg<'_>],
) -> Result<Vec<<D::Db as sqlx::Database>::Row>, StoreError> {
    D::Db::fetch_all(On::Pool(driver.pool(purpose)), D::Db::query(sql, args)).await
}

#[async_trait]
impl<D: Driver> EligibleStore for D {
    async fn eligible_jobs(&self, cutoffs: &Cutoffs) -> Result<PerPolicy<EligibleJobs>, StoreError> {
        let args = cutoff_args(cutoffs);
        let row = fetch_optional(self, Purpose::PlannedReads, D::SQL.count_eligible, &args).await?;
        decode::eligible::<D::Db>(&row.ok_or_else(|| StoreError::Database("no row from an aggregate".into()))?)
    }

    /// Each rule's walk returns up to the limit in its age order; merged
    /// here in the order the jobs became eligible, which is each walk's own
    /// order moved by its retention, so the first `limit` are exact.
    async fn find_eligible(&self, batch: BatchRequest<'_>) -> Result<Vec<Candidate>, StoreError> {
        let mut args = cutoff_args(batch.cutoffs);
        for (policy, job_type) in RULES {
            let after =
                batch.after[policy][job_type].unwrap_or(SortKey { timestamp: start_of_time(), job_id: i64::MIN });
            args.extend([after.timestamp.into(), after.job_id.into()]);
        }
        args.push(i64::from(batch.limit).into());
        let rows = fetch_all(self, Purpose::PlannedReads, D::SQL.eligible, &args).await?;
        let mut candidates = decode::all(&rows, decode::candidate::<D::Db>)?;
        candidates.sort_by_key(|candidate| {
            candidate.key.due(retention_micros(batch.retentions, candidate.policy, candidate.job_type))
        });
        candidates.truncate(batch.limit as usize);
        Ok(candidates)
    }

    async fn nth_eligible(
        &self,
        cutoffs: &Cutoffs,
        retentions: &Retentions,
        n: u64,
    ) -> Result<Option<SortKey>, StoreError> {
        let mut args = cutoff_args(cutoffs);
        args.extend(shift_args(retentions));
        args.push(limit(Some(n)));
        let row = fetch_optional(self, Purpose::PlannedReads, D::SQL.nth_eligible, &args).await?;
        row.as_ref().map(decode::sort_key::<D::Db>).transpose()
    }

    async fn forecast(&self, window: ForecastWindow<'_>) -> Result<Vec<ForecastCount>, StoreError> {
        let mut args = cutoff_args(window.cutoffs);
        args.extend(cutoff_args(window.horizons).into_iter().take(RULES.len()));
        args.push(i64::from(window.days).into());
        let rows = fetch_all(self, Purpose::General, D::SQL.forecast, &args).await?;
        decode::all(&rows, decode::forecast_count::<D::Db>)
    }
}

#[async_trait]
impl<D: Driver> TrailStore for D {
    async fn audit(&self, search: &AuditSearch, limit_to: Option<u64>) -> Result<Vec<AuditEntry>, StoreError> {
        let (sql, mut args): (_, Vec<Arg>) = match search {
            AuditSearch::All { before } => (D::SQL.audit_before, vec![(*before).into()]),
            AuditSearch::Run { run_id, before } => (D::SQL.audit_of_run, vec![(*run_id).into(), (*before).into()]),
            AuditSearch::Name { name, run_id, before } => {
                (D::SQL.audit_of_name, vec![name.as_str().into(), (*run_id).into(), (*before).into()])
            }
            AuditSearch::NameRange { until, after_name, after_id } => (
                D::SQL.audit_of_name_range,
                vec![until.as_str().into(), after_name.as_str().into(), (*after_id).into()],
            ),
        };
        args.push(limit(limit_to));
        let rows = fetch_all(self, Purpose::General, sql, &args).await?;
        decode::all(&rows, decode::audit_entry::<D::Db>)
    }

    async fn audit_id_range(&self, window: &AuditWindow) -> Result<Option<(i64, i64)>, StoreError> {
        let row = if *window == AuditWindow::default() {
            fetch_optional(self, Purpose::PlannedReads, D::SQL.audit_id_range, &[]).await?
        } else {
            let since = window.since.unwrap_or_else(start_of_time);
            let until = window.until.unwrap_or(DateTime::<Utc>::MAX_UTC);
            fetch_optional(self, Purpose::PlannedReads, D::SQL.audit_id_range_between, &[since.into(), until.into()])
                .await?
        };
        let row = row.ok_or_else(|| StoreError::Database("no row from an aggregate".into()))?;
        Ok(D::Db::optional_int(&row, "first")?.zip(D::Db::optional_int(&row, "last")?))
    }

    async fn audit_page(&self, after: i64, last: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let args = [after.into(), last.into(), i64::from(limit).into()];
        let rows = fetch_all(self, Purpose::PlannedReads, D::SQL.audit_page, &args).await?;
        decode::all(&rows, decode::audit_entry::<D::Db>)
    }

    async fn runs(&self, before: i64, limit_to: Option<u64>) -> Result<Vec<RunRecord>, StoreError> {
        let rows = fetch_all(self, Purpose::General, D::SQL.runs_before, &[before.into(), limit(limit_to)]).await?;
        decode::all(&rows, decode::run::<D::Db>)
    }

    async fn run(&self, run_id: i64) -> Result<Option<RunRecord>, StoreError> {
        let row = fetch_optional(self, Purpose::General, D::SQL.run, &[run_id.into()]).await?;
        row.as_ref().map(decode::run::<D::Db>).transpose()
    }
}

#[async_trait]
impl<D: Driver> PageStore for D {
    async fn count_held(&self) -> Result<u64, StoreError> {
        let row = fetch_optional(self, Purpose::General, D::SQL.count_held, &[]).await?;
        let row = row.ok_or_else(|| StoreError::Database("no row from an aggregate".into()))?;
        Ok(D::Db::int(&row, "held")? as u64)
    }

    async fn held_jobs(&self, after: Option<HeldKey>, limit: u32) -> Result<Vec<HeldJob>, StoreError> {
        let after = after.unwrap_or(HeldKey { created_at: start_of_time(), id: i64::MIN });
        let args = [after.created_at.into(), after.id.into(), i64::from(limit).into()];
        let rows = fetch_all(self, Purpose::General, D::SQL.held, &args).await?;
        decode::all(&rows, decode::held_job::<D::Db>)
    }
}
