//! Integers in request bodies as JSON Schema (and so the OpenAPI document) defines them: any
//! number without a fractional part, so `49.0` is the integer 49, as a client's JSON encoder
//! may write it. Serde alone would refuse it.

use serde::de::Error;
use serde::{Deserialize, Deserializer};

fn integer_of<E: Error, T: TryFrom<u64>>(n: serde_json::Number) -> Result<T, E> {
    let value = n
        .as_u64()
        .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64).map(|f| f as u64));
    let value = value.ok_or_else(|| E::custom(format!("{n} is not a non-negative integer")))?;
    T::try_from(value).map_err(|_| E::custom(format!("{value} is out of range")))
}

/// A required (or defaulted) integer field.
pub fn integer<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    integer_of(serde_json::Number::deserialize(d)?)
}

/// An optional integer field (`null` is absent).
pub fn optional_integer<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?.map(integer_of).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Sample {
        #[serde(deserialize_with = "integer")]
        n: u8,
        #[serde(default, deserialize_with = "optional_integer")]
        m: Option<u32>,
    }

    #[test]
    fn integral_numbers_are_integers_and_others_are_refused() {
        let s: Sample = serde_json::from_str(r#"{"n": 49.0, "m": null}"#).unwrap();
        assert_eq!((s.n, s.m), (49, None));
        let s: Sample = serde_json::from_str(r#"{"n": 7, "m": 1e3}"#).unwrap();
        assert_eq!((s.n, s.m), (7, Some(1000)));
        for bad in [r#"{"n": 1.5}"#, r#"{"n": -1}"#, r#"{"n": 256}"#, r#"{"n": "1"}"#, r#"{"n": 1, "m": 0.1}"#] {
            assert!(serde_json::from_str::<Sample>(bad).is_err(), "{bad}");
        }
    }
}
