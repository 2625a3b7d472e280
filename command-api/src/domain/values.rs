//! Validated values. Each has a private field and a `parse` that says what is wrong, so an
//! invalid username or email cannot exist past the HTTP edge.

use shared::problem::FieldError;

macro_rules! value_type {
    ($name:ident) => {
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

value_type!(Username);
value_type!(Email);
value_type!(Password);
value_type!(DisplayName);
value_type!(Region);

impl Username {
    /// 3–32 of `a-z0-9_.-`; upper-case letters are folded, as usernames are case-insensitive.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let lower = raw.trim().to_ascii_lowercase();
        if !(3..=32).contains(&lower.len()) {
            return Err("must be 3 to 32 characters".into());
        }
        if !lower
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
        {
            return Err("may only hold a-z, 0-9, '_', '.' and '-'".into());
        }
        Ok(Self(lower))
    }
}

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim();
        let valid = email.len() <= 254
            && !email.chars().any(char::is_whitespace)
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if valid {
            Ok(Self(email.to_owned()))
        } else {
            Err("is not an email address".into())
        }
    }
}

impl Password {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let length = raw.chars().count();
        if (8..=128).contains(&length) {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must be 8 to 128 characters".into())
        }
    }
}

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if (1..=100).contains(&name.chars().count()) {
            Ok(Self(name.to_owned()))
        } else {
            Err("must be 1 to 100 characters".into())
        }
    }
}

pub const REGIONS: [&str; 7] = [
    "south-america",
    "north-america",
    "central-america",
    "europe",
    "asia",
    "africa",
    "oceania",
];

impl Region {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if REGIONS.contains(&raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!("must be one of {}", REGIONS.join(", ")))
        }
    }
}

/// A price: a decimal string with at most two decimals, or a JSON number of that form; kept
/// as a string with exactly two decimals (`"1299.9"` → `"1299.90"`). Never negative.
pub fn parse_price(raw: &serde_json::Value) -> Result<String, String> {
    const BAD: &str = "must be a non-negative amount with at most two decimals, like \"1299.99\"";
    let text = match raw {
        serde_json::Value::String(s) => s.trim().to_owned(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return Err(BAD.into()),
    };
    let (units, cents) = text.split_once('.').unwrap_or((&text, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if units.is_empty() || units.len() > 12 || !digits(units) || cents.len() > 2 || !digits(cents) {
        return Err(BAD.into());
    }
    let units = units.trim_start_matches('0');
    Ok(format!(
        "{}.{cents:0<2}",
        if units.is_empty() { "0" } else { units }
    ))
}

/// An ISO 4217 code: three upper-case letters.
pub fn parse_currency(raw: &str) -> Result<String, String> {
    if raw.len() == 3 && raw.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(raw.to_owned())
    } else {
        Err("must be an ISO 4217 code like USD".into())
    }
}

/// Text of `min..=max` characters, trimmed.
pub fn parse_text(raw: &str, min: usize, max: usize) -> Result<String, String> {
    let text = raw.trim();
    if (min..=max).contains(&text.chars().count()) {
        Ok(text.to_owned())
    } else {
        Err(format!("must be {min} to {max} characters"))
    }
}

/// Specs: a flat map of strings to strings (at most 100 entries, keys up to 100 characters,
/// values up to 1000).
pub fn parse_specs(
    raw: &serde_json::Value,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    const BAD: &str = "must be an object of strings, like {\"sensor\": \"full frame\"}";
    let object = raw.as_object().ok_or(BAD)?;
    if object.len() > 100 {
        return Err("may have at most 100 entries".into());
    }
    object
        .iter()
        .map(|(key, value)| {
            let value = value.as_str().ok_or(BAD)?;
            if key.is_empty() || key.chars().count() > 100 || value.chars().count() > 1000 {
                return Err("keys must be 1 to 100 characters, values at most 1000".to_owned());
            }
            Ok((key.clone(), value.to_owned()))
        })
        .collect()
}

/// Collects one error per field while parsing a request body.
#[derive(Default)]
pub struct Fields {
    errors: Vec<FieldError>,
}

impl Fields {
    /// Parses a required field; records a problem and returns `None` when it fails.
    pub fn required<V: ?Sized, T>(
        &mut self,
        field: &str,
        value: Option<&V>,
        parse: impl FnOnce(&V) -> Result<T, String>,
    ) -> Option<T> {
        match value {
            None => {
                self.errors.push(FieldError::new(field, "is required"));
                None
            }
            Some(v) => self.optional(field, Some(v), parse),
        }
    }

    /// Parses a field if present; records a problem and returns `None` when it fails.
    pub fn optional<V: ?Sized, T>(
        &mut self,
        field: &str,
        value: Option<&V>,
        parse: impl FnOnce(&V) -> Result<T, String>,
    ) -> Option<T> {
        match parse(value?) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.errors.push(FieldError::new(field, message));
                None
            }
        }
    }

    pub fn push(&mut self, field: &str, message: &str) {
        self.errors.push(FieldError::new(field, message));
    }

    /// `Ok` if every field parsed, else the 422 listing each problem.
    pub fn finish(self) -> Result<(), shared::ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(shared::ApiError::Validation(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_fold_case_and_refuse_other_characters() {
        assert_eq!(
            Username::parse("Ana_Maria.B-1").unwrap().as_str(),
            "ana_maria.b-1"
        );
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("has space").is_err());
        assert!(Username::parse("émile").is_err());
        assert!(Username::parse(&"a".repeat(33)).is_err());
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert!(Email::parse("ana@example.com").is_ok());
        assert!(Email::parse("ana@example").is_err());
        assert!(Email::parse("@example.com").is_err());
        assert!(Email::parse("a b@example.com").is_err());
    }

    #[test]
    fn passwords_are_8_to_128_characters() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"x".repeat(129)).is_err());
    }

    #[test]
    fn prices_are_normalised_to_two_decimals_and_refuse_anything_else() {
        use serde_json::json;
        assert_eq!(parse_price(&json!("1299.99")).unwrap(), "1299.99");
        assert_eq!(parse_price(&json!("1299.9")).unwrap(), "1299.90");
        assert_eq!(parse_price(&json!(1299.5)).unwrap(), "1299.50");
        assert_eq!(parse_price(&json!(0)).unwrap(), "0.00");
        assert_eq!(parse_price(&json!("007")).unwrap(), "7.00");
        for bad in [
            json!("-1"),
            json!(-1),
            json!("1.999"),
            json!(1.999),
            json!("abc"),
            json!(true),
            json!("1e3"),
            json!(""),
        ] {
            assert!(parse_price(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn specs_are_a_flat_map_of_strings() {
        use serde_json::json;
        assert_eq!(
            parse_specs(&json!({"iso": "100-6400"})).unwrap()["iso"],
            "100-6400"
        );
        assert!(parse_specs(&json!({"iso": 100})).is_err());
        assert!(parse_specs(&json!({"lens": {"mm": "28"}})).is_err());
        assert!(parse_specs(&json!(["a"])).is_err());
    }

    #[test]
    fn regions_come_from_the_list() {
        assert!(Region::parse("south-america").is_ok());
        assert!(Region::parse("antarctica").is_err());
    }
}
