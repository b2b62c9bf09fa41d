//! Aileron's host: DAG processor, metastore, scheduler, executor, API and CLI.
//!
//! The flow of one run: [`dag_processor`] parses DAG files, [`scheduler`] creates the
//! DagRun and its TaskInstances in the [`metastore`] and decides what runs, the
//! [`executors`] run each try in the sandbox (`aileron-sandbox`) and reports back,
//! and [`api`] and [`web`] show it all, served by [`server`].

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod dag_processor;
pub mod execution_api;
pub mod executors;
pub mod metastore;
pub mod scheduler;
pub mod server;
pub mod settings;
pub mod sync;
pub mod web;
