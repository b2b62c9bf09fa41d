//! The engine: one minijinja environment with its limits, the walk over a params
//! tree, a string rendered as a native value or as text, and minijinja's errors turned
//! into [`TemplateError`]s.

use super::context::context_value;
use super::lookups::{Lookups, VariableMissing};
use super::{
    FUEL_PER_TEMPLATE, MAX_RENDERED_BYTES, RECURSION_LIMIT, RenderContext, TemplateError,
    TemplateLookups,
};
use crate::params_schema::is_template;
use minijinja::value::Value as MjValue;
use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value;
use std::io;
use std::sync::Arc;

/// Whether any string in `value` is a template.
pub(super) fn contains_template(value: &Value) -> bool {
    match value {
        Value::String(s) => is_template(s),
        Value::Array(a) => a.iter().any(contains_template),
        Value::Object(o) => o.values().any(contains_template),
        _ => false,
    }
}

/// One rendering session: an environment and the context (with its lookup cache)
/// shared by every string of one params tree. `'a` covers the templates.
pub(super) struct Renderer<'a> {
    env: Environment<'a>,
    ctx_value: MjValue,
}

impl<'a> Renderer<'a> {
    pub(super) fn new(ctx: &RenderContext, lookups: Arc<dyn TemplateLookups>) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL_PER_TEMPLATE));
        env.set_recursion_limit(RECURSION_LIMIT);
        // Jinja's default (and Airflow's) keeps a template's trailing newline.
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        let ctx_value = context_value(ctx, &Lookups::new(lookups));
        Self { env, ctx_value }
    }

    pub(super) fn walk(&self, value: &'a Value, path: &str) -> Result<Value, TemplateError> {
        Ok(match value {
            Value::String(s) if is_template(s) => self.render_string(s, path)?,
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.walk(item, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.walk(v, &child_path(path, k))?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => other.clone(),
        })
    }

    pub(super) fn render_string(
        &self,
        template: &'a str,
        path: &str,
    ) -> Result<Value, TemplateError> {
        match single_expression(template) {
            Some(expr) => self.eval_native(expr, template, path),
            None => self.render_text(template, path),
        }
    }

    fn eval_native(
        &self,
        expr: &'a str,
        template: &'a str,
        path: &str,
    ) -> Result<Value, TemplateError> {
        let compiled = match self.env.compile_expression(expr) {
            Ok(c) => c,
            // Let the template parser report it, with the template's own positions.
            Err(_) => return self.render_text(template, path),
        };
        match compiled.eval(self.ctx_value.clone()) {
            // An undefined result renders as an error naming it (or as "" for a silent
            // undefined such as `x if false`): the template path says which.
            Ok(v) if v.is_undefined() => self.render_text(template, path),
            Ok(v) => {
                let json = serde_json::to_value(&v).map_err(|e| TemplateError::NotJson {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
                if json_size(&json) > MAX_RENDERED_BYTES {
                    return Err(TemplateError::TooLarge {
                        path: path.to_owned(),
                    });
                }
                Ok(json)
            }
            Err(e) => Err(convert_error(&e, path)),
        }
    }

    fn render_text(&self, template: &'a str, path: &str) -> Result<Value, TemplateError> {
        let tmpl = self
            .env
            .template_from_named_str(TEMPLATE_NAME, template)
            .map_err(|e| convert_error(&e, path))?;
        let mut out = CappedWriter::default();
        match tmpl.render_captured_to(self.ctx_value.clone(), &mut out) {
            Ok(_) => {}
            Err(_) if out.overflowed => {
                return Err(TemplateError::TooLarge {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(convert_error(&e, path)),
        }
        String::from_utf8(out.buf)
            .map(Value::String)
            .map_err(|e| TemplateError::NotJson {
                path: path.to_owned(),
                message: e.to_string(),
            })
    }
}

const TEMPLATE_NAME: &str = "<template>";

/// `{{ expr }}` with nothing around it (whitespace allowed) → `expr`.
pub(super) fn single_expression(template: &str) -> Option<&str> {
    let inner = template.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    // Jinja whitespace control markers: `{{- x -}}`, `{{+ x +}}`.
    let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
    let inner = inner.strip_suffix(['-', '+']).unwrap_or(inner);
    let nested = ["{{", "}}", "{%", "%}", "{#", "#}"];
    if inner.trim().is_empty() || nested.iter().any(|d| inner.contains(d)) {
        // `{{ a }} and {{ b }}` also starts and ends with braces: not one expression.
        return None;
    }
    Some(inner.trim())
}

/// The length of `value`'s compact JSON text, without building it.
fn json_size(value: &Value) -> usize {
    struct Counter(usize);
    impl io::Write for Counter {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0 += data.len();
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing into a counter cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// A writer that stops at [`MAX_RENDERED_BYTES`].
#[derive(Default)]
struct CappedWriter {
    buf: Vec<u8>,
    overflowed: bool,
}

impl io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > MAX_RENDERED_BYTES {
            self.overflowed = true;
            return Err(io::Error::other("rendered output too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn convert_error(e: &minijinja::Error, path: &str) -> TemplateError {
    let path = path.to_owned();
    let detail = e.detail().map(str::to_owned);
    let line = e
        .line()
        .filter(|&l| l > 1)
        .map(|l| format!(" (line {l})"))
        .unwrap_or_default();
    match e.kind() {
        ErrorKind::SyntaxError => TemplateError::Syntax {
            path,
            message: format!("{}{line}", detail.unwrap_or_else(|| e.kind().to_string())),
        },
        ErrorKind::OutOfFuel => TemplateError::OutOfFuel { path },
        ErrorKind::UndefinedError => TemplateError::Render {
            path,
            message: format!(
                "{}{line}",
                detail.unwrap_or_else(|| "undefined value".to_owned())
            ),
        },
        kind => {
            if let Some(missing) = variable_missing(e) {
                return TemplateError::VariableNotFound {
                    path,
                    key: missing.key.clone(),
                };
            }
            let message = match detail {
                Some(d) => format!("{kind}: {d}{line}"),
                None => format!("{kind}{line}"),
            };
            TemplateError::Render { path, message }
        }
    }
}

/// The missing Variable behind `e`, if that is what it is. Searched along the whole
/// source chain, in case minijinja wraps the error on its way out.
fn variable_missing(e: &minijinja::Error) -> Option<&VariableMissing> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(missing) = s.downcast_ref::<VariableMissing>() {
            return Some(missing);
        }
        source = s.source();
    }
    None
}

fn child_path(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Value::String(key.to_owned()))
    }
}

/// An error a template object raises for a bad argument or operation.
pub(super) fn invalid(msg: impl Into<String>) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, msg.into())
}
