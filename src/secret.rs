//! A string that must never leak: tokens and passwords.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What every redacted value looks like in output.
pub(crate) const REDACTED: &str = "<redacted>";

/// A credential. `Debug`, `Display` and `Serialize` print [`REDACTED`]; only
/// [`Secret::expose`] hands out the value, so every use is easy to audit.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for building an `Authorization` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// A numeric value (`password: 123456`) is taken as text, so a type error
/// never quotes a credential back.
#[derive(Deserialize)]
#[serde(untagged)]
enum SecretRepr {
    Text(String),
    Number(serde_json::Number),
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match SecretRepr::deserialize(deserializer) {
            // A trailing newline (from `echo` into a variable, or a block
            // scalar) would make every request fail; it is never meant.
            Ok(SecretRepr::Text(text)) => {
                let text = text.trim();
                if text.chars().any(char::is_control) {
                    return Err(serde::de::Error::custom(
                        "contains a line break or control character; a credential is one line of text",
                    ));
                }
                Ok(Secret(text.to_owned()))
            }
            Ok(SecretRepr::Number(number)) => Ok(Secret(number.to_string())),
            Err(_) => Err(serde::de::Error::custom("invalid type: expected a string")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(format!("{secret}"), REDACTED);
        assert_eq!(
            serde_json::to_string(&secret).unwrap(),
            format!("\"{REDACTED}\"")
        );
        assert_eq!(secret.expose(), "hunter2");
    }
}
