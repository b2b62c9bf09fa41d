//! Aileron's host: DAG processor, metastore, scheduler, executor, API and CLI.

pub mod dag_processor;
