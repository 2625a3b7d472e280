//! Prices: decimal strings with at most two decimals (`"1299.99"`), compared and sorted as
//! whole cents.

/// The amount in cents, if `text` is a non-negative decimal with at most 12 integer digits and
/// at most two decimals (`"12"`, `"12.5"`, `"12.50"`).
pub fn cents(text: &str) -> Option<i64> {
    let (units, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if units.is_empty() || units.len() > 12 || !digits(units) {
        return None;
    }
    if fraction.len() > 2 || !digits(fraction) || (text.contains('.') && fraction.is_empty()) {
        return None;
    }
    let units: i64 = units.parse().ok()?;
    let fraction: i64 = format!("{fraction:0<2}").parse().ok()?;
    units.checked_mul(100)?.checked_add(fraction)
}

#[cfg(test)]
mod tests {
    use super::cents;

    #[test]
    fn decimal_strings_become_cents() {
        assert_eq!(cents("1299.99"), Some(129_999));
        assert_eq!(cents("12.5"), Some(1250));
        assert_eq!(cents("0"), Some(0));
        assert_eq!(cents("007.00"), Some(700));
        assert_eq!(cents("999999999999.99"), Some(99_999_999_999_999));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            ".5",
            "1.",
            "1.234",
            "-1",
            "+1",
            "1e3",
            "1,00",
            " 1",
            "NaN",
            "1.-1",
            "1000000000000",
        ] {
            assert_eq!(cents(bad), None, "{bad:?}");
        }
    }
}
