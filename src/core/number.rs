//! JSON number text, exactly: its canonical form (sign, digits, power of
//! ten) for comparing numbers by value whatever their spelling, and the
//! plain-integer fast path. Pure: no I/O, no JSON tree.

use serde_json::{Number, Value};
use std::cmp::Ordering;
use std::fmt;

/// Builds a JSON number from JSON number text, exactly (a string when the
/// text is not a number).
pub fn number(text: &str) -> Value {
    // the common case (a row's integer) without the JSON parser: digits
    // with no leading zero, no `-0`, written back as the same text
    if let Some(n) = json_integer(text) {
        return Value::from(n);
    }
    match serde_json::from_str::<Number>(text) {
        Ok(n) => Value::Number(n),
        Err(_) => Value::String(text.to_string()),
    }
}

/// The value of number text that is a JSON integer written as
/// `Value::from` writes it: an optional minus, at most 18 digits, no
/// leading zero, not `-0`.
fn json_integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let first = *digits.as_bytes().first()?;
    if (first == b'0' && text != "0") || digits.len() > 18 {
        return None;
    }
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

/// The value of number text made of plain digits (an optional minus and at
/// most 18 digits), the common case, without building the canonical form.
pub(crate) fn plain_integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

/// A JSON number as sign, significant digits and a power of ten:
/// `value = (-1)^negative * digits * 10^exponent`, with no leading or
/// trailing zeros in `digits` (zero is empty digits, positive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    negative: bool,
    digits: String,
    exponent: i64,
}

impl Canonical {
    pub(crate) fn from_i64(n: i64) -> Canonical {
        canonical_number(&n.to_string()).expect("an integer is a number")
    }

    pub(crate) fn shifted(&self, by: i64) -> Canonical {
        let mut c = self.clone();
        if !c.digits.is_empty() {
            c.exponent += by;
        }
        c
    }

    pub(crate) fn to_i64(&self) -> Option<i64> {
        if self.digits.is_empty() {
            return Some(0);
        }
        if self.exponent < 0 || self.digits.len() as i64 + self.exponent > 19 {
            return None;
        }
        let mut s = self.digits.clone();
        s.extend(std::iter::repeat_n('0', self.exponent as usize));
        let magnitude: i128 = s.parse().ok()?;
        i64::try_from(if self.negative { -magnitude } else { magnitude }).ok()
    }

    fn cmp_magnitude(&self, other: &Canonical) -> Ordering {
        // order of magnitude first: position of the leading digit
        let lead_a = self.digits.len() as i64 + self.exponent;
        let lead_b = other.digits.len() as i64 + other.exponent;
        match (self.digits.is_empty(), other.digits.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        lead_a.cmp(&lead_b).then_with(|| {
            let n = self.digits.len().max(other.digits.len());
            let pad = |d: &str| format!("{d:0<n$}");
            pad(&self.digits).cmp(&pad(&other.digits))
        })
    }
}

impl PartialOrd for Canonical {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Canonical {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl fmt::Display for Canonical {
    /// Plain decimal text (no exponent) for modest exponents, else `de±x`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.digits.is_empty() {
            return f.write_str("0");
        }
        if self.negative {
            f.write_str("-")?;
        }
        let len = self.digits.len() as i64;
        if self.exponent >= 0 && self.exponent <= 30 {
            write!(f, "{}{}", self.digits, "0".repeat(self.exponent as usize))
        } else if self.exponent < 0 && -self.exponent < len {
            let split = (len + self.exponent) as usize;
            write!(f, "{}.{}", &self.digits[..split], &self.digits[split..])
        } else if self.exponent < 0 && -self.exponent - len <= 30 {
            write!(
                f,
                "0.{}{}",
                "0".repeat((-self.exponent - len) as usize),
                self.digits
            )
        } else {
            write!(f, "{}e{}", self.digits, self.exponent)
        }
    }
}

/// A JSON number's text in parts: `-int.frac e exp`.
pub(crate) struct NumberText<'a> {
    pub negative: bool,
    pub int_part: &'a str,
    pub frac_part: &'a str,
    pub exp: i64,
}

/// Splits number text into its parts; `None` if it is not a number.
pub(crate) fn split_number(text: &str) -> Option<NumberText<'_>> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    if int_part.is_empty()
        || !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(NumberText {
        negative,
        int_part,
        frac_part,
        exp,
    })
}

/// Parses JSON number text into its canonical form; `None` if it is not a
/// number.
pub fn canonical_number(text: &str) -> Option<Canonical> {
    let NumberText {
        negative,
        int_part,
        frac_part,
        exp,
    } = split_number(text)?;
    let all = format!("{int_part}{frac_part}");
    let mut exponent = exp.checked_sub(frac_part.len() as i64)?;
    let trimmed_lead = all.trim_start_matches('0');
    let digits = trimmed_lead.trim_end_matches('0');
    exponent += (trimmed_lead.len() - digits.len()) as i64;
    if digits.is_empty() {
        return Some(Canonical {
            negative: false,
            digits: String::new(),
            exponent: 0,
        });
    }
    Some(Canonical {
        negative,
        digits: digits.to_string(),
        exponent,
    })
}

/// Compares a JSON number with a bound from the spec (`min`/`max`).
pub(crate) fn cmp_number(v: &str, bound: &Canonical) -> Option<Ordering> {
    Some(canonical_number(v)?.cmp(bound))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::json::json_eq;

    fn n(s: &str) -> Value {
        number(s)
    }

    /// What `number` gave before its integer shortcut: the JSON parser's
    /// number, or the text as a string.
    fn parsed(text: &str) -> Value {
        match serde_json::from_str::<Number>(text) {
            Ok(n) => Value::Number(n),
            Err(_) => Value::String(text.to_string()),
        }
    }

    #[test]
    fn the_integer_shortcut_writes_what_the_parser_writes() {
        for text in [
            "0",
            "-0",
            "00",
            "007",
            "-007",
            "5",
            "-5",
            "1e3",
            "1.0",
            "",
            "-",
            "+5",
            " 5",
            "999999999999999999",
            "-999999999999999999",
            "1000000000000000000",
            "9223372036854775807",
            "-9223372036854775808",
            "12a",
        ] {
            let (fast, slow) = (number(text), parsed(text));
            assert_eq!(fast, slow, "{text:?}");
            assert_eq!(fast.to_string(), slow.to_string(), "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_number_text_is_kept_as_the_parser_keeps_it(text in "-?[0-9]{0,20}(\\.[0-9]{0,3})?") {
            let (fast, slow) = (number(&text), parsed(&text));
            proptest::prop_assert_eq!(fast.to_string(), slow.to_string());
            proptest::prop_assert_eq!(fast, slow);
        }
    }
    #[test]
    fn canonical_numbers_compare_by_value() {
        assert!(json_eq(&n("1"), &n("1.0")));
        assert!(json_eq(&n("100"), &n("1e2")));
        assert!(json_eq(&n("0.00"), &n("-0")));
        assert!(json_eq(&n("12.5e-1"), &n("1.25")));
        assert!(!json_eq(&n("1"), &n("1.0000000000000000000001")));
        let big = canonical_number("123456789012345678901234567890").unwrap();
        let bigger = canonical_number("123456789012345678901234567891").unwrap();
        assert!(big < bigger);
        assert!(canonical_number("-5").unwrap() < canonical_number("-4.5").unwrap());
        assert!(canonical_number("0.001").unwrap() < canonical_number("0.01").unwrap());
        assert_eq!(canonical_number("1.5e3").unwrap().to_i64(), Some(1500));
        assert_eq!(canonical_number("1.5").unwrap().to_i64(), None);
    }
}
