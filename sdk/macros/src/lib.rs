//! The `#[operator]` attribute of the Aileron SDK: turns one Rust function into the
//! `describe` and `execute` exports of an Aileron operator component.
//!
//! Use it through `aileron_sdk::operator`; the generated code names only
//! `::aileron_sdk` paths, so operator crates need no direct dependency on
//! `wit-bindgen`. The documentation with examples lives on the SDK crate.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Expr, FnArg, ItemFn, Lit, LitStr, Meta, ReturnType, Type};

/// Turns a function into an Aileron operator component.
///
/// ```text
/// /// Logs the message and returns it.
/// #[operator(name = "echo", version = "0.1.0", params_schema = r#"{"type":"object"}"#)]
/// fn echo(ctx: &TaskContext, params: Params) -> Result<Outcome, TaskError> { … }
/// ```
///
/// Arguments: `name` (required), `version` (default: the crate's version),
/// `description` (default: the function's doc comment) and `params_schema`
/// (default: `{"type":"object"}`). See the `aileron-sdk` crate docs.
#[proc_macro_attribute]
pub fn operator(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = TokenStream2::from(item);
    match expand(attr.into(), item.clone()) {
        Ok(expanded) => expanded.into(),
        // Keep the function itself so its body still type-checks and the only
        // errors shown are the signature's, not a cascade of "cannot find" ones.
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#error #item).into()
        }
    }
}

/// The operator's metadata as written in the attribute.
#[derive(Default)]
struct Args {
    name: Option<LitStr>,
    version: Option<LitStr>,
    description: Option<LitStr>,
    params_schema: Option<LitStr>,
}

impl Args {
    fn parse(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let slot = if meta.path.is_ident("name") {
            &mut self.name
        } else if meta.path.is_ident("version") {
            &mut self.version
        } else if meta.path.is_ident("description") {
            &mut self.description
        } else if meta.path.is_ident("params_schema") {
            &mut self.params_schema
        } else {
            return Err(meta.error(
                "unknown `#[operator]` argument; expected `name`, `version`, `description` or `params_schema`",
            ));
        };
        if slot.is_some() {
            return Err(meta.error("this argument is given twice"));
        }
        *slot = Some(meta.value()?.parse()?);
        Ok(())
    }
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let mut args = Args::default();
    let parser = syn::meta::parser(|meta| args.parse(meta));
    syn::parse::Parser::parse2(parser, attr)?;

    let function: ItemFn = syn::parse2(item.clone()).map_err(|_| {
        syn::Error::new_spanned(
            &item,
            "`#[operator]` goes on a free function: `fn name(ctx: &TaskContext, params: Params) -> Result<Outcome, TaskError>`",
        )
    })?;

    // Collect every problem before failing, so one build shows them all.
    let mut errors: Option<syn::Error> = None;
    let mut push = |error: syn::Error| match &mut errors {
        Some(all) => all.combine(error),
        None => errors = Some(error),
    };
    let name = match &args.name {
        Some(name) => {
            if let Err(error) = check_name(name) {
                push(error);
            }
            Some(name)
        }
        None => {
            push(syn::Error::new(
                Span::call_site(),
                "`#[operator]` needs a name: `#[operator(name = \"my-operator\")]`",
            ));
            None
        }
    };
    if let Some(version) = &args.version
        && let Err(error) = check_version(version)
    {
        push(error);
    }
    if let Some(schema) = &args.params_schema
        && let Err(error) = check_schema(schema)
    {
        push(error);
    }
    let signature = match check_signature(&function) {
        Ok(signature) => Some(signature),
        Err(error) => {
            push(error);
            None
        }
    };
    if let Some(errors) = errors {
        return Err(errors);
    }
    let (Some(name), Some(signature)) = (name, signature) else {
        unreachable!("every missing piece pushed an error above");
    };

    let version = match &args.version {
        Some(version) => quote!(#version),
        None => quote!(::core::env!("CARGO_PKG_VERSION")),
    };
    let description = args
        .description
        .clone()
        .unwrap_or_else(|| LitStr::new(&doc_comment(&function), Span::call_site()));
    // Written by hand, or derived from the params type (its `JsonSchema`), so
    // the schema cannot drift from the code; a function taking the params as
    // a `serde_json::Value`, or none, takes any object.
    let params_schema = match (&args.params_schema, signature.params) {
        (Some(schema), _) => quote!(#schema),
        (None, Some(params)) if !is_json_value(params) => quote_spanned! {params.span()=>
            &::aileron_sdk::__private::schema_of::<#params>()
        },
        (None, _) => quote!(r#"{"type":"object"}"#),
    };

    let ident = &function.sig.ident;
    // Spanning the glue at the user's types points type errors at the user's code.
    let call = match signature.params {
        Some(params) => {
            let assert = quote_spanned! {params.span()=>
                ::aileron_sdk::__private::assert_params::<#params>();
            };
            let call = quote_spanned! {signature.output_span=>
                ::aileron_sdk::__private::execute(info, &params, #ident)
            };
            quote!(#assert #call)
        }
        None => quote_spanned! {signature.output_span=>
            {
                let _ = params;
                ::aileron_sdk::__private::execute_without_params(info, #ident)
            }
        },
    };

    Ok(quote! {
        #function

        /// The component's exports, generated by `#[operator]`.
        #[doc(hidden)]
        struct __AileronOperator;

        impl ::aileron_sdk::wit::Guest for __AileronOperator {
            fn describe() -> ::aileron_sdk::wit::OperatorInfo {
                ::aileron_sdk::__private::describe(#name, #version, #description, #params_schema)
            }

            fn execute(
                info: ::aileron_sdk::wit::TaskInfo,
                params: ::aileron_sdk::wit::Json,
            ) -> ::core::result::Result<::aileron_sdk::wit::Outcome, ::aileron_sdk::wit::TaskError> {
                #call
            }
        }

        ::aileron_sdk::wit::export!(__AileronOperator with_types_in ::aileron_sdk::wit);
    })
}

/// Whether `ty` names `serde_json::Value` (as `Value` or by a path ending so).
fn is_json_value(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == "Value"))
}

/// What the glue needs to know about a signature that passed the checks.
struct Signature<'a> {
    /// The params type, or `None` for a function that takes only the context.
    params: Option<&'a Type>,
    output_span: Span,
}

const SHAPE: &str = "fn name(ctx: &TaskContext, params: Params) -> Result<Outcome, TaskError>";

fn check_signature(function: &ItemFn) -> syn::Result<Signature<'_>> {
    let sig = &function.sig;
    if let Some(asyncness) = &sig.asyncness {
        return Err(syn::Error::new_spanned(
            asyncness,
            "an operator function cannot be `async`: the operator world is synchronous",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        return Err(syn::Error::new_spanned(
            unsafety,
            "an operator function cannot be `unsafe`: the host calls it with no preconditions",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "an operator function cannot be generic: the component exports one concrete function",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new_spanned(
            variadic,
            "an operator function cannot be variadic",
        ));
    }
    if let Some(receiver) = sig.receiver() {
        return Err(syn::Error::new_spanned(
            receiver,
            format!("an operator is a free function, not a method: `{SHAPE}`"),
        ));
    }

    let inputs: Vec<&Type> = sig
        .inputs
        .iter()
        .map(|input| match input {
            FnArg::Typed(typed) => &*typed.ty,
            FnArg::Receiver(_) => unreachable!("receivers were rejected above"),
        })
        .collect();
    let params = match inputs.as_slice() {
        [context] => {
            check_context(context)?;
            None
        }
        [context, params] => {
            check_context(context)?;
            Some(*params)
        }
        [] => {
            return Err(syn::Error::new(
                sig.paren_token.span.join(),
                format!("an operator function takes the task context and its params: `{SHAPE}`"),
            ));
        }
        [..] => {
            return Err(syn::Error::new_spanned(
                &sig.inputs,
                format!(
                    "an operator function takes at most two arguments, the task context and its params: `{SHAPE}`"
                ),
            ));
        }
    };

    let output_span = match &sig.output {
        ReturnType::Default => {
            return Err(syn::Error::new(
                sig.paren_token.span.close(),
                "an operator function must return `Result<Outcome, TaskError>`",
            ));
        }
        ReturnType::Type(_, ty) => {
            if !is_result(ty) {
                return Err(syn::Error::new_spanned(
                    ty,
                    "an operator function must return `Result<Outcome, TaskError>`",
                ));
            }
            ty.span()
        }
    };
    Ok(Signature {
        params,
        output_span,
    })
}

/// The context must be borrowed: the glue owns it for the length of the call.
fn check_context(ty: &Type) -> syn::Result<()> {
    match ty {
        Type::Reference(reference) if reference.mutability.is_none() => Ok(()),
        _ => Err(syn::Error::new_spanned(
            ty,
            "the first argument of an operator function must be `&TaskContext`",
        )),
    }
}

/// A syntactic check: the real type is checked by the compiler on the glue call,
/// but "expected `Result`" reads better when the return type is plainly not one.
fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Result"),
        Type::Paren(inner) => is_result(&inner.elem),
        Type::Group(inner) => is_result(&inner.elem),
        _ => false,
    }
}

/// Names appear in DAG files (`operator = "echo@1.0.0"`), so they stay plain.
fn check_name(name: &LitStr) -> syn::Result<()> {
    let value = name.value();
    let mut chars = value.chars();
    let valid = chars
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(syn::Error::new_spanned(
            name,
            "an operator name is lowercase ASCII letters, digits, `-`, `_` and `.`, starting with a letter or digit",
        ))
    }
}

/// DAGs pin versions as `name@MAJOR.MINOR.PATCH`, so the version must be semver.
fn check_version(version: &LitStr) -> syn::Result<()> {
    if is_semver(&version.value()) {
        Ok(())
    } else {
        Err(syn::Error::new_spanned(
            version,
            "an operator version is semver: `MAJOR.MINOR.PATCH`, optionally with `-pre` and `+build`",
        ))
    }
}

fn is_semver(version: &str) -> bool {
    let (rest, build) = match version.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (version, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let identifiers = |text: &str| {
        text.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    };
    let numbers: Vec<&str> = core.split('.').collect();
    numbers.len() == 3
        && numbers.iter().all(|number| {
            !number.is_empty()
                && number.chars().all(|c| c.is_ascii_digit())
                && (number.len() == 1 || !number.starts_with('0'))
        })
        && pre.is_none_or(identifiers)
        && build.is_none_or(identifiers)
}

/// The host validates DAG params against this schema, so a malformed one would
/// only surface as a confusing import error; catch it while compiling instead.
fn check_schema(schema: &LitStr) -> syn::Result<()> {
    match serde_json::from_str::<serde_json::Value>(&schema.value()) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err(syn::Error::new_spanned(
            schema,
            "`params_schema` must be a JSON Schema object, such as `{\"type\":\"object\"}`",
        )),
        Err(error) => Err(syn::Error::new_spanned(
            schema,
            format!("`params_schema` is not valid JSON: {error}"),
        )),
    }
}

/// The doc comment as plain text: one line per `///` line, without the space
/// rustdoc conventionally puts after the slashes.
fn doc_comment(function: &ItemFn) -> String {
    let lines: Vec<String> = function
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .filter_map(|attr| match &attr.meta {
            Meta::NameValue(pair) => match &pair.value {
                Expr::Lit(expr) => match &expr.lit {
                    Lit::Str(text) => Some(text.value()),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        })
        .flat_map(|text| {
            // `split`, not `lines`: an empty `///` line is an empty string, and it
            // must still separate paragraphs.
            text.split('\n')
                .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    lines.join("\n").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_versions_are_recognised() {
        for good in [
            "0.1.0",
            "1.0.0",
            "10.20.30",
            "1.0.0-rc.1",
            "1.0.0+build.5",
            "1.0.0-beta+exp.sha.5114f85",
        ] {
            assert!(is_semver(good), "{good}");
        }
        for bad in [
            "",
            "1",
            "1.0",
            "1.0.0.0",
            "01.0.0",
            "1.0.x",
            "1.0.0-",
            "1.0.0+",
            "v1.0.0",
            "1.0.0-a..b",
        ] {
            assert!(!is_semver(bad), "{bad}");
        }
    }

    #[test]
    fn doc_comments_become_the_description() {
        let function: ItemFn = syn::parse_quote! {
            /// Logs the message
            ///
            /// and returns it.
            #[doc(hidden)]
            fn echo() {}
        };
        assert_eq!(
            doc_comment(&function),
            "Logs the message\n\nand returns it."
        );
    }

    #[test]
    fn names_are_plain() {
        let ok = |name: &str| check_name(&LitStr::new(name, Span::call_site())).is_ok();
        assert!(ok("echo") && ok("http-get") && ok("acme.s3_copy") && ok("7zip"));
        assert!(!ok("") && !ok("Echo") && !ok("echo@1.0.0") && !ok("-echo") && !ok("a b"));
    }

    fn expand_error(attr: TokenStream2, item: TokenStream2) -> String {
        expand(attr, item).unwrap_err().to_string()
    }

    #[test]
    fn wrong_signatures_are_explained() {
        let name = quote!(name = "x");
        assert!(
            expand_error(
                name.clone(),
                quote!(
                    fn x(ctx: &TaskContext, a: A, b: B) -> Result<Outcome, TaskError> {}
                )
            )
            .contains("at most two arguments")
        );
        assert!(
            expand_error(
                name.clone(),
                quote!(
                    fn x() -> Result<Outcome, TaskError> {}
                )
            )
            .contains("takes the task context")
        );
        assert!(
            expand_error(
                name.clone(),
                quote!(
                    fn x(ctx: &TaskContext) -> Outcome {}
                )
            )
            .contains("must return `Result")
        );
        assert!(
            expand_error(
                name.clone(),
                quote!(
                    fn x(ctx: &TaskContext) {}
                )
            )
            .contains("must return `Result")
        );
        assert!(
            expand_error(
                name.clone(),
                quote!(
                    fn x(ctx: TaskContext) -> Result<Outcome, TaskError> {}
                )
            )
            .contains("`&TaskContext`")
        );
        assert!(
            expand_error(
                name.clone(),
                quote!(
                    async fn x(ctx: &TaskContext) -> Result<Outcome, TaskError> {}
                )
            )
            .contains("`async`")
        );
        assert!(
            expand_error(
                name,
                quote!(
                    struct X;
                )
            )
            .contains("goes on a free function")
        );
    }

    #[test]
    fn attribute_arguments_are_checked() {
        let item = quote!(
            fn x(ctx: &TaskContext) -> Result<Outcome, TaskError> {}
        );
        assert!(expand_error(quote!(), item.clone()).contains("needs a name"));
        assert!(
            expand_error(quote!(name = "x", nme = "y"), item.clone())
                .contains("unknown `#[operator]` argument")
        );
        assert!(expand_error(quote!(name = "x", name = "y"), item.clone()).contains("given twice"));
        assert!(expand_error(quote!(name = "x", version = "1.0"), item.clone()).contains("semver"));
        assert!(
            expand_error(quote!(name = "x", params_schema = "{"), item.clone())
                .contains("not valid JSON")
        );
        assert!(
            expand_error(quote!(name = "x", params_schema = "[]"), item)
                .contains("JSON Schema object")
        );
    }

    #[test]
    fn a_valid_operator_expands_to_the_exports() {
        let expanded = expand(
            quote!(name = "echo", version = "0.1.0"),
            quote!(
                /// Echoes.
                fn echo(ctx: &TaskContext, params: Params) -> Result<Outcome, TaskError> {
                    todo!()
                }
            ),
        )
        .unwrap()
        .to_string();
        assert!(
            expanded.contains("impl :: aileron_sdk :: wit :: Guest for __AileronOperator"),
            "{expanded}"
        );
        assert!(expanded.contains("\"Echoes.\""), "{expanded}");
        assert!(expanded.contains("export !"), "{expanded}");
    }
}
