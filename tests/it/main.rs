//! The integration-test binary: real host, real scheduler, real wasm components.
//! Each module covers one area; `aileron_tests` (tests/harness) holds the shared
//! harness. Scheduler time runs on a simulated clock, so retry delays and schedules
//! cost no wall time.

mod access;
mod airflow_clients;
mod allow_hosts;
mod api;
mod api_fuzz;
mod backfill_api;
mod backfill_ui;
mod browser;
mod browser_tenants;
mod cli;
mod crash;
mod credentials;
mod dag_files;
mod db_clean;
mod execution_api;
mod held_secrets;
mod hostile_inputs;
mod http_sensor;
mod languages;
mod manual;
mod multinode;
mod multinode_tenants;
mod openapi;
mod plugins;
mod retries;
mod rules;
mod sandbox;
mod schedule;
mod secrets;
mod semantic;
mod tenant_limits;
mod tenant_quotas;
mod workers_api;
mod xcom;
