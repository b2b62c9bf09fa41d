//! Query strings as Airflow's API takes them: a list parameter may repeat its key
//! (`?state=queued&state=running`, what Airflow's clients send) or separate its
//! values with commas; both reach a filter as one comma-separated string.

use super::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// The query string deserialized into `T`, repeated keys joined with commas. A
/// scalar given twice then fails to parse, with the field named.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parse(parts.uri.query().unwrap_or_default())
            .map(ApiQuery)
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
    }
}

/// The values of one list parameter as it reaches a filter (comma-joined, see
/// [`parse`]), trimmed, empty ones left out.
pub fn items(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|v| !v.is_empty())
}

/// `query` with repeated keys joined (in the order given), deserialized.
pub fn parse<T: DeserializeOwned>(query: &str) -> Result<T, serde_urlencoded::de::Error> {
    let mut joined: Vec<(String, String)> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match joined.iter_mut().find(|(k, _)| *k == key) {
            Some((_, values)) => {
                values.push(',');
                values.push_str(&value);
            }
            None => joined.push((key.into_owned(), value.into_owned())),
        }
    }
    let text = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&joined)
        .finish();
    serde_urlencoded::from_str(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Filter {
        state: Option<String>,
        limit: Option<usize>,
        pattern: Option<String>,
    }

    #[test]
    fn repeated_keys_are_joined_and_scalars_keep_their_type() {
        let f: Filter = parse("state=queued&limit=5&state=running&pattern=a%2Cb").unwrap();
        assert_eq!(
            f,
            Filter {
                state: Some("queued,running".into()),
                limit: Some(5),
                pattern: Some("a,b".into()),
            }
        );
        let empty: Filter = parse("").unwrap();
        assert_eq!(empty.state, None);
        let twice = parse::<Filter>("limit=1&limit=2").unwrap_err().to_string();
        assert!(twice.contains("invalid digit"), "{twice}");
    }
}
