//! What this process runs with, kept so `/api/v2/config` can show it as
//! Airflow shows its configuration: sections of options, under the names
//! Airflow gives them where it has one. A secret (the queue's URL, which may
//! carry a password; the workers' token) is never kept here, only Airflow's
//! mask for a sensitive option that is set.

use std::fmt::Display;

/// What Airflow shows for a sensitive option.
pub const HIDDEN: &str = "< hidden >";

/// Sections in the order they were first set, options likewise.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    sections: Vec<Section>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// `(key, value)` pairs.
    pub options: Vec<(String, String)>,
}

impl Settings {
    /// Sets `key` of `section` (replacing an earlier value).
    pub fn set(&mut self, section: &str, key: &str, value: impl Display) {
        let value = value.to_string();
        let at = match self.sections.iter().position(|s| s.name == section) {
            Some(at) => at,
            None => {
                self.sections.push(Section {
                    name: section.to_owned(),
                    options: Vec::new(),
                });
                self.sections.len() - 1
            }
        };
        let options = &mut self.sections[at].options;
        match options.iter_mut().find(|(k, _)| k == key) {
            Some(option) => option.1 = value,
            None => options.push((key.to_owned(), value)),
        }
    }

    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

impl Section {
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Sections as an `airflow.cfg` reads: `[section]`, then `key = value` lines.
pub fn ini<'a>(sections: impl IntoIterator<Item = &'a Section>) -> String {
    let mut out = String::new();
    for s in sections {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("[{}]\n", s.name));
        for (k, v) in &s.options {
            out.push_str(&format!("{k} = {v}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_keep_their_order_and_the_last_value() {
        let mut s = Settings::default();
        s.set("core", "parallelism", 32);
        s.set("api", "port", 8080);
        s.set("core", "parallelism", 8);
        s.set("core", "executor", "LocalExecutor");
        let core = s.section("core").unwrap();
        assert_eq!(core.option("parallelism"), Some("8"));
        assert_eq!(
            ini(s.sections()),
            "[core]\nparallelism = 8\nexecutor = LocalExecutor\n\n[api]\nport = 8080\n"
        );
        assert!(s.section("nowhere").is_none());
    }
}
