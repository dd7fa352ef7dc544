//! Money: one integer type, micro-USD in an `i64` (1 USD = 1,000,000), with arithmetic in
//! `i128` and exact decimal parsing. No floating point anywhere on the money path.

use std::fmt;

/// An amount in micro-USD. Negative amounts are debits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Micros(pub i64);

pub const MICROS_PER_USD: i64 = 1_000_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("{0:?} is not a decimal amount like 10.50")]
    Malformed(String),
    #[error("{0:?} has more than 6 decimal places")]
    TooPrecise(String),
    #[error("{0:?} is out of range")]
    OutOfRange(String),
}

impl Micros {
    pub const ZERO: Micros = Micros(0);

    /// Parses a decimal dollar amount (`"10.50"`, `"-3"`, `"0.000001"`) exactly.
    pub fn parse_usd(s: &str) -> Result<Micros, MoneyError> {
        let t = s.trim();
        let (neg, digits) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && frac.is_empty()) || !ok(whole) || !ok(frac) {
            return Err(MoneyError::Malformed(s.to_owned()));
        }
        if frac.len() > 6 {
            return Err(MoneyError::TooPrecise(s.to_owned()));
        }
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole
                .parse()
                .map_err(|_| MoneyError::OutOfRange(s.to_owned()))?
        };
        let mut frac_micros: i128 = 0;
        for (i, b) in frac.bytes().enumerate() {
            frac_micros += i128::from(b - b'0') * 10i128.pow(5 - i as u32);
        }
        let v = whole
            .checked_mul(i128::from(MICROS_PER_USD))
            .and_then(|w| w.checked_add(frac_micros))
            .ok_or_else(|| MoneyError::OutOfRange(s.to_owned()))?;
        let v = if neg { -v } else { v };
        i64::try_from(v)
            .map(Micros)
            .map_err(|_| MoneyError::OutOfRange(s.to_owned()))
    }

    pub fn checked_add(self, o: Micros) -> Option<Micros> {
        self.0.checked_add(o.0).map(Micros)
    }
}

impl fmt::Display for Micros {
    /// Dollars with six decimals, trailing zeros trimmed to at least two: `10.50`, `0.000123`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = i128::from(self.0);
        let sign = if v < 0 { "-" } else { "" };
        let a = v.abs();
        let whole = a / i128::from(MICROS_PER_USD);
        let frac = format!("{:06}", a % i128::from(MICROS_PER_USD));
        let trimmed = frac.trim_end_matches('0');
        let shown = if trimmed.len() < 2 {
            &frac[..2]
        } else {
            trimmed
        };
        write!(f, "{sign}{whole}.{shown}")
    }
}

/// A price per million tokens, in micro-USD (so `$0.15 / 1M` is `150_000`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct PerMillion(pub i64);

impl PerMillion {
    /// The cost of `tokens` at this price, rounded up to the next micro-USD.
    pub fn cost(self, tokens: u64) -> Micros {
        let num = i128::from(tokens) * i128::from(self.0.max(0));
        let v = (num + 999_999) / 1_000_000;
        Micros(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        assert_eq!(Micros::parse_usd("10.50"), Ok(Micros(10_500_000)));
        assert_eq!(Micros::parse_usd("-3"), Ok(Micros(-3_000_000)));
        assert_eq!(Micros::parse_usd("0.000001"), Ok(Micros(1)));
        assert_eq!(Micros::parse_usd(".5"), Ok(Micros(500_000)));
        assert!(Micros::parse_usd("1.0000001").is_err());
        assert!(Micros::parse_usd("1e3").is_err());
        assert!(Micros::parse_usd("").is_err());
        assert!(Micros::parse_usd("-").is_err());
        assert!(Micros::parse_usd("99999999999999999999").is_err());
        assert_eq!(Micros(10_500_000).to_string(), "10.50");
        assert_eq!(Micros(123).to_string(), "0.000123");
        assert_eq!(Micros(-2_000_000).to_string(), "-2.00");
    }

    #[test]
    fn cost_rounds_up_per_line_item() {
        let p = PerMillion(150_000); // $0.15 / 1M
        assert_eq!(p.cost(0), Micros(0));
        assert_eq!(p.cost(1), Micros(1)); // 0.15 micro rounds up
        assert_eq!(p.cost(1_000_000), Micros(150_000));
        assert_eq!(PerMillion(0).cost(1_000), Micros(0));
        assert_eq!(PerMillion(i64::MAX).cost(u64::MAX), Micros(i64::MAX));
    }
}
