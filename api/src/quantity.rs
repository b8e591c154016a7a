//! Resource quantities (`"500m"`, `"1.5"`, `"128Mi"`, `"1e3"`) as Kubernetes writes them.
//!
//! A [`Quantity`] keeps the text the user wrote (so objects round-trip unchanged) and converts
//! to exact integers on demand: milli-units for CPU, units (bytes) for memory, rounding up as
//! Kubernetes' `MilliValue`/`Value` do.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[schemars(with = "String")]
pub struct Quantity(pub String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {0:?}"
)]
pub struct ParseQuantityError(pub String);

/// How much of resource `name` a resource list (requests, limits, capacity, allocatable) holds,
/// in the unit Kubernetes counts it in: millicores for `cpu`, whole units (bytes, pods) for
/// everything else; 0 when absent or unreadable.
pub fn amount(list: &std::collections::BTreeMap<String, Quantity>, name: &str) -> i64 {
    list.get(name)
        .and_then(|q| {
            if name == "cpu" {
                q.milli_value().ok()
            } else {
                q.value().ok()
            }
        })
        .unwrap_or(0)
}

impl Quantity {
    pub fn new(s: impl Into<String>) -> Self {
        Quantity(s.into())
    }

    /// A quantity of whole units (`"4"`).
    pub fn from_units(v: i64) -> Self {
        Quantity(v.to_string())
    }

    /// A quantity of milli-units, written the way Kubernetes would (`"1500m"`, or `"2"` when whole).
    pub fn from_milli(v: i64) -> Self {
        if v % 1000 == 0 {
            Quantity((v / 1000).to_string())
        } else {
            Quantity(format!("{v}m"))
        }
    }

    /// Bytes written with the largest exact binary suffix (`"512Mi"`).
    pub fn from_bytes(v: i64) -> Self {
        for (suffix, shift) in [
            ("Ei", 60),
            ("Pi", 50),
            ("Ti", 40),
            ("Gi", 30),
            ("Mi", 20),
            ("Ki", 10),
        ] {
            let unit = 1i64 << shift;
            if v != 0 && v % unit == 0 {
                return Quantity(format!("{}{suffix}", v / unit));
            }
        }
        Quantity(v.to_string())
    }

    /// The value in thousandths, rounded up (CPU: `"500m"` → 500, `"2"` → 2000).
    pub fn milli_value(&self) -> Result<i64, ParseQuantityError> {
        self.scaled(1000)
    }

    /// The value in units, rounded up (memory: `"1Ki"` → 1024).
    pub fn value(&self) -> Result<i64, ParseQuantityError> {
        self.scaled(1)
    }

    /// ceil(quantity × scale), exact for every valid quantity that fits an i64.
    fn scaled(&self, scale: i128) -> Result<i64, ParseQuantityError> {
        let err = || ParseQuantityError(self.0.clone());
        let s = self.0.trim();
        let (neg, s) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let num_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(num_end);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(err());
        }
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.len() + frac_part.len() > 30 {
            return Err(err());
        }
        let digits: i128 = format!("{int_part}{frac_part}")
            .parse()
            .map_err(|_| err())?;
        // value = digits / 10^frac × 2^bin × 10^dec
        let mut dec_exp: i32 = -(frac_part.len() as i32);
        let mut bin_exp: u32 = 0;
        match suffix {
            "" => {}
            "n" => dec_exp -= 9,
            "u" => dec_exp -= 6,
            "m" => dec_exp -= 3,
            "k" => dec_exp += 3,
            "M" => dec_exp += 6,
            "G" => dec_exp += 9,
            "T" => dec_exp += 12,
            "P" => dec_exp += 15,
            "E" => dec_exp += 18,
            "Ki" => bin_exp = 10,
            "Mi" => bin_exp = 20,
            "Gi" => bin_exp = 30,
            "Ti" => bin_exp = 40,
            "Pi" => bin_exp = 50,
            "Ei" => bin_exp = 60,
            s if s.starts_with(['e', 'E']) => {
                let e: i32 = s[1..].parse().map_err(|_| err())?;
                if e.abs() > 30 {
                    return Err(err());
                }
                dec_exp += e;
            }
            _ => return Err(err()),
        }
        let mut numer = digits.checked_mul(scale).ok_or_else(err)?;
        numer = numer.checked_mul(1i128 << bin_exp).ok_or_else(err)?;
        let mut denom: i128 = 1;
        if dec_exp >= 0 {
            numer = numer
                .checked_mul(10i128.checked_pow(dec_exp as u32).ok_or_else(err)?)
                .ok_or_else(err)?;
        } else {
            denom = 10i128.checked_pow((-dec_exp) as u32).ok_or_else(err)?;
        }
        let mut v = numer / denom;
        if numer % denom != 0 {
            v += 1; // round away from zero, as Kubernetes does for positive values
        }
        if neg {
            v = -v;
        }
        i64::try_from(v).map_err(|_| err())
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    /// Accepts strings and bare numbers: YAML's `cpu: 1` is a number.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            I(i64),
            F(f64),
        }
        let q = match Raw::deserialize(d)? {
            Raw::S(s) => Quantity(s),
            Raw::I(i) => Quantity(i.to_string()),
            Raw::F(f) => Quantity(f.to_string()),
        };
        q.value()
            .map_err(|e| serde::de::Error::custom(e.to_string()))?;
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> i64 {
        Quantity::new(s).milli_value().unwrap()
    }
    fn v(s: &str) -> i64 {
        Quantity::new(s).value().unwrap()
    }

    #[test]
    fn cpu_in_millis() {
        assert_eq!(m("500m"), 500);
        assert_eq!(m("1"), 1000);
        assert_eq!(m("1.5"), 1500);
        assert_eq!(m("0.1"), 100);
        assert_eq!(m("100u"), 1); // rounds up
        assert_eq!(m("2k"), 2_000_000);
    }

    #[test]
    fn memory_in_bytes() {
        assert_eq!(v("128Mi"), 128 * 1024 * 1024);
        assert_eq!(v("1Gi"), 1 << 30);
        assert_eq!(v("1G"), 1_000_000_000);
        assert_eq!(v("1e3"), 1000);
        assert_eq!(v("1.5Ki"), 1536);
        assert_eq!(v("100m"), 1);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "abc", "1.2.3", "12Q", "Mi", "1e", "--1"] {
            assert!(Quantity::new(bad).value().is_err(), "{bad}");
        }
    }

    #[test]
    fn yaml_numbers_are_quantities() {
        let q: Quantity = serde_yaml::from_str("1").unwrap();
        assert_eq!(q.milli_value().unwrap(), 1000);
        let q: Quantity = serde_yaml::from_str("0.5").unwrap();
        assert_eq!(q.milli_value().unwrap(), 500);
        assert!(serde_json::from_str::<Quantity>("\"1x\"").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(Quantity::from_milli(1500).0, "1500m");
        assert_eq!(Quantity::from_milli(2000).0, "2");
        assert_eq!(Quantity::from_bytes(512 << 20).0, "512Mi");
        assert_eq!(Quantity::from_bytes(1000).0, "1000");
    }
}
