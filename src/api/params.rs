//! Query-string parsing with Backstage's validation: repeated parameters,
//! unknown parameters rejected, integers checked.

/// The decoded query string, in order.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes `raw`; a parameter not in `allowed` is an error, as in
    /// Backstage's OpenAPI validation.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Self, String> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        if let Some((name, _)) = pairs
            .iter()
            .find(|(name, _)| !allowed.contains(&name.as_str()))
        {
            return Err(format!("Unknown query parameter '{name}'"));
        }
        Ok(Self(pairs))
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A non-negative integer parameter.
    pub fn uint(&self, name: &str) -> Result<Option<usize>, String> {
        match self.one(name) {
            None => Ok(None),
            Some(text) => match text.trim().parse::<i64>() {
                Ok(n) if n < 0 => Err(format!("request/query/{name} must be >= 0")),
                Ok(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
                Err(_) => Err(format!("request/query/{name} must be integer")),
            },
        }
    }

    /// The pairs except `name`, for building links.
    pub fn without(&self, names: &[&str]) -> Vec<(String, String)> {
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
            Params::parse(Some("x=1"), &["filter"]).unwrap_err(),
            "Unknown query parameter 'x'"
        );
        let p = Params::parse(Some("limit=-1&offset=abc"), &["limit", "offset"]).unwrap();
        assert_eq!(
            p.uint("limit"),
            Err("request/query/limit must be >= 0".into())
        );
        assert_eq!(
            p.uint("offset"),
            Err("request/query/offset must be integer".into())
        );
    }
}
