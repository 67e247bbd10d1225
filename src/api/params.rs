//! Query-string parsing with Backstage's validation: repeated parameters,
//! unknown parameters rejected, integers checked.

/// Why a query string was rejected (400 `InputError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ParamsError {
    #[error("Unknown query parameter '{0}'")]
    Unknown(String),
    #[error("request/query/{0} must be >= 0")]
    Negative(String),
    #[error("request/query/{0} must be integer")]
    NotInteger(String),
}

/// The decoded query string, in order.
#[derive(Debug, Default)]
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes `raw`; a parameter not in `allowed` is an error, as in
    /// Backstage's OpenAPI validation.
    pub(super) fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Self, ParamsError> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        if let Some((name, _)) = pairs
            .iter()
            .find(|(name, _)| !allowed.contains(&name.as_str()))
        {
            return Err(ParamsError::Unknown(name.clone()));
        }
        Ok(Self(pairs))
    }

    pub(super) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub(super) fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A non-negative integer parameter.
    pub(super) fn uint(&self, name: &str) -> Result<Option<usize>, ParamsError> {
        match self.one(name) {
            None => Ok(None),
            Some(text) => match text.trim().parse::<i64>() {
                Ok(n) if n < 0 => Err(ParamsError::Negative(name.to_owned())),
                Ok(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
                Err(_) => Err(ParamsError::NotInteger(name.to_owned())),
            },
        }
    }

    /// The pairs except `name`, for building links.
    pub(super) fn without(&self, names: &[&str]) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter(|(n, _)| !names.contains(&n.as_str()))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_repeats_and_validates() {
        let p = Params::parse(
            Some("filter=kind%3Dcomponent%2Cspec.type&filter=kind%3Dapi&limit=5"),
            &["filter", "limit"],
        )
        .unwrap();
        assert_eq!(
            p.all("filter"),
            vec!["kind=component,spec.type", "kind=api"]
        );
        assert_eq!(p.uint("limit"), Ok(Some(5)));
        assert_eq!(
            Params::parse(Some("x=1"), &["filter"])
                .unwrap_err()
                .to_string(),
            "Unknown query parameter 'x'"
        );
        let p = Params::parse(Some("limit=-1&offset=abc"), &["limit", "offset"]).unwrap();
        assert_eq!(
            p.uint("limit").unwrap_err().to_string(),
            "request/query/limit must be >= 0"
        );
        assert_eq!(
            p.uint("offset").unwrap_err().to_string(),
            "request/query/offset must be integer"
        );
    }
}
