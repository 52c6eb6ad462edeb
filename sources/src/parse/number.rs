//! Metric values from field text: [`parse_decimal`] for the short plain decimals
//! logs are made of (read straight to an integer and a scale, no float), and
//! [`parse_number`] for every other number.

/// Exact powers of ten: an integer below 2^53 divided by one of these is
/// correctly rounded, i.e. the same as `str::parse::<f64>`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A plain decimal read without a float: `(-1)^neg × digits / 10^frac`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimal {
    /// Whether the text had a leading `-` (also for `-0`).
    pub neg: bool,
    /// The digits as an integer, the decimal point left out (below 10^15).
    pub digits: u64,
    /// How many digits followed the decimal point.
    pub frac: u32,
}

/// Most digits [`parse_decimal`] reads: any integer of 15 digits is exact in an
/// `f64`, so [`parse_number`] takes the same text to `digits / 10^frac`.
const DECIMAL_DIGITS: u32 = 15;

/// `s` as a [`Decimal`] when it is a plain decimal of at most 15 digits with an
/// optional sign and decimal point ("123", "-4.5", "0.003", "+7", "5.", ".5");
/// `None` for anything else — then [`parse_number`] decides (it may still read an
/// exponent or a long mantissa). Every text this reads, [`parse_number`] reads too,
/// as `digits / 10^frac` correctly rounded.
#[inline]
pub fn parse_decimal(s: &str) -> Option<Decimal> {
    let b = s.as_bytes();
    let (neg, body) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    // The integer part, then the fraction: no per-digit bookkeeping of the point.
    // Wrapping: more than 15 digits are refused below, whatever they added up to.
    let mut digits: u64 = 0;
    let mut i = 0;
    while let Some(d) = body
        .get(i)
        .map(|c| c.wrapping_sub(b'0'))
        .filter(|&d| d < 10)
    {
        digits = digits.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    let int_digits = i;
    let mut frac = 0;
    if body.get(i) == Some(&b'.') {
        i += 1;
        while let Some(d) = body
            .get(i)
            .map(|c| c.wrapping_sub(b'0'))
            .filter(|&d| d < 10)
        {
            digits = digits.wrapping_mul(10).wrapping_add(u64::from(d));
            i += 1;
            frac += 1;
        }
    }
    let n = int_digits + frac;
    (i == body.len() && n > 0 && n <= DECIMAL_DIGITS as usize).then_some(Decimal {
        neg,
        digits,
        frac: frac as u32,
    })
}

/// Fast number parse for metric values: integers and decimals ("123", "-4.5",
/// "0.003", "1e3"); "-" or "" -> None.
///
/// Also `None` for anything that is not a finite decimal number: whitespace,
/// `inf`, `NaN`, hex, thousands separators. A leading `+` is accepted.
pub fn parse_number(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let (neg, body) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    // Fast path: up to 15 significant-or-not digits with an optional '.'.
    let mut mant: u64 = 0;
    let mut ndigits = 0u32;
    let mut frac = 0usize;
    let mut dot = false;
    let mut plain = true;
    for &c in body {
        if c.is_ascii_digit() {
            if ndigits < 15 {
                mant = mant * 10 + u64::from(c - b'0');
            }
            ndigits += 1;
            frac += usize::from(dot);
        } else if c == b'.' && !dot {
            dot = true;
        } else {
            plain = false;
            break;
        }
    }
    if plain && ndigits == 0 {
        return None;
    }
    if plain && ndigits <= 15 && frac < POW10.len() {
        let v = mant as f64 / POW10[frac];
        return Some(if neg { -v } else { v });
    }
    // Exponents and long mantissas: the standard library, but only on number
    // characters so "inf" and "nan" stay out.
    if !b
        .iter()
        .all(|c| matches!(c, b'0'..=b'9' | b'.' | b'-' | b'+' | b'e' | b'E'))
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimal_examples() {
        let d = |neg, digits, frac| Some(Decimal { neg, digits, frac });
        assert_eq!(parse_decimal("123"), d(false, 123, 0));
        assert_eq!(parse_decimal("-4.50"), d(true, 450, 2));
        assert_eq!(parse_decimal("0.003"), d(false, 3, 3));
        assert_eq!(parse_decimal("+7"), d(false, 7, 0));
        assert_eq!(parse_decimal("5."), d(false, 5, 0));
        assert_eq!(parse_decimal(".5"), d(false, 5, 1));
        assert_eq!(parse_decimal("-0"), d(true, 0, 0));
        assert_eq!(
            parse_decimal("999999999999999"),
            d(false, 999_999_999_999_999, 0)
        );
        for other in [
            "",
            "-",
            "+",
            ".",
            "-.",
            "1e3",
            "1,5",
            " 1",
            "1 ",
            "inf",
            "1..2",
            "--1",
            "1234567890123456",
            "0.0000000000000001",
        ] {
            assert_eq!(parse_decimal(other), None, "{other:?}");
        }
    }

    #[test]
    fn examples() {
        assert_eq!(parse_number("123"), Some(123.0));
        assert_eq!(parse_number("-4.5"), Some(-4.5));
        assert_eq!(parse_number("0.003"), Some(0.003));
        assert_eq!(parse_number("1e3"), Some(1000.0));
        assert_eq!(parse_number("1.5E-3"), Some(0.0015));
        assert_eq!(parse_number("+7"), Some(7.0));
        assert_eq!(parse_number("5."), Some(5.0));
        assert_eq!(parse_number(".5"), Some(0.5));
        assert_eq!(
            parse_number("12345678901234567890"),
            Some(12345678901234567890.0)
        );
        assert_eq!(
            parse_number("0.1234567890123456789"),
            "0.1234567890123456789".parse().ok()
        );
        for bad in [
            "", "-", "+", ".", "-.", "abc", "1,5", " 1", "1 ", "inf", "NaN", "1e999", "0x10",
            "1..2", "1e", "--1",
        ] {
            assert_eq!(parse_number(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn same_as_std_on_decimals(s in "[-+]?[0-9]{0,20}(\\.[0-9]{0,20})?([eE][-+]?[0-9]{1,3})?") {
            let std = s.parse::<f64>().ok().filter(|v| v.is_finite());
            prop_assert_eq!(parse_number(&s).map(f64::to_bits), std.map(f64::to_bits), "{}", s);
        }

        #[test]
        fn never_panics(s in "\\PC{0,30}") {
            let _ = parse_number(&s);
            let _ = parse_decimal(&s);
        }

        /// What `parse_decimal` reads, `parse_number` reads to the same value; what
        /// it leaves, `parse_number` decides alone (it is never wider).
        #[test]
        fn decimals_are_the_numbers_parse_number_reads(
            s in "[-+]?[0-9]{0,17}(\\.[0-9]{0,17})?([eE][-+]?[0-9]{1,2})?|\\PC{0,8}"
        ) {
            if let Some(d) = parse_decimal(&s) {
                let v = d.digits as f64 / POW10[d.frac as usize];
                let v = if d.neg { -v } else { v };
                prop_assert_eq!(parse_number(&s).map(f64::to_bits), Some(v.to_bits()), "{}", s);
            }
        }
    }
}
