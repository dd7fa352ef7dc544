//! How the console writes numbers: money, token counts, prices, dates. Shared by the server
//! render and the browser, so a hydrated page shows exactly what the server sent.

/// Writes `n × 10^-scale` as a decimal, trailing zeros trimmed (at least `min_frac` digits).
pub fn decimal(n: i128, scale: u32, min_frac: usize) -> String {
    let sign = if n < 0 { "-" } else { "" };
    let a = n.unsigned_abs();
    let div = 10u128.pow(scale);
    let whole = a / div;
    let mut frac = format!("{:0width$}", a % div, width = scale as usize);
    while frac.len() > min_frac && frac.ends_with('0') {
        frac.pop();
    }
    if frac.is_empty() {
        format!("{sign}{}", group(whole))
    } else {
        format!("{sign}{}.{frac}", group(whole))
    }
}

/// Thousands separators: `1234567` → `1,234,567`.
fn group(v: u128) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Money in micro-USD as dollars: `$1,234.50`, `$0.000123`, `-$2.00`.
pub fn usd(micros: i64) -> String {
    let s = decimal(i128::from(micros), 6, 2);
    match s.strip_prefix('-') {
        Some(rest) => format!("-${rest}"),
        None => format!("${s}"),
    }
}

/// A marked-up price per million tokens (units of 1e-10 USD): `$3.15`.
pub fn per_million(scaled: i64) -> String {
    format!("${}", decimal(i128::from(scaled), 10, 2))
}

/// The same price per token, as a plain decimal string: `0.00000315`.
pub fn per_token(scaled: i64) -> String {
    decimal(i128::from(scaled), 16, 1)
}

/// A token count with separators.
pub fn count(n: u64) -> String {
    group(u128::from(n))
}

/// A context window: `200K`, `1.05M`.
pub fn context(n: u32) -> String {
    if n >= 1_000_000 {
        format!("{}M", decimal(i128::from(n / 10_000), 2, 0))
    } else if n >= 1_000 {
        format!("{}K", n / 1_000)
    } else {
        n.to_string()
    }
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` → days since the epoch; `None` unless it is a real date.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.trim().splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if !(1..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    (civil(days) == (y, m, d)).then_some(days)
}

/// Days since the epoch → `2026-12-05`.
pub fn date(days: i64) -> String {
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Unix ms → `2026-12-05 14:03 UTC`.
pub fn time(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let secs = ms.rem_euclid(86_400_000) / 1000;
    format!(
        "{} {:02}:{:02}:{:02}",
        date(days),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_prices() {
        assert_eq!(usd(10_500_000), "$10.50");
        assert_eq!(usd(123), "$0.000123");
        assert_eq!(usd(-2_000_000), "-$2.00");
        assert_eq!(usd(1_234_567_890_000), "$1,234,567.89");
        // $3.00 list with 5% markup: 3_000_000 × 10_500.
        assert_eq!(per_million(3_000_000 * 10_500), "$3.15");
        assert_eq!(per_token(3_000_000 * 10_500), "0.00000315");
        assert_eq!(per_token(0), "0.0");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(context(1_050_000), "1.05M");
        assert_eq!(context(200_000), "200K");
    }

    #[test]
    fn dates_round_trip() {
        for d in [-1, 0, 1, 59, 60, 10_956, 20_792, 2_932_896] {
            let (y, m, dd) = civil(d);
            assert_eq!(days_from_civil(y, m, dd), d);
            assert_eq!(parse_date(&date(d)), Some(d));
        }
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(parse_date("2026-02-30"), None);
        assert_eq!(parse_date("x"), None);
        assert_eq!(time(86_400_000 + 3_723_000), "1970-01-02 01:02:03");
    }
}
