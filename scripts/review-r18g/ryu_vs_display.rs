// Review R18g: the jsonl float printing of dbd171e (sinks/src/format.rs
// `float`, copied here) against `{f}`, on the population where it takes the
// ryu path: every f64 whose shortest digits are at most 15 significant digits
// is the parse of such a decimal string, so random strings of 1..=15 digits at
// every exponent ryu prints without one (and a margin past it) are sampled,
// plus their neighbours (1-3 ulps: 16-17 digits, the fallback), the results
// of divisions and sums (avg, sum rules), and around every power of two.
// Build: rustc -O --edition 2021 ryu_vs_display.rs --extern ryu=<libryu.rlib>
// Run: ./ryu_vs_display SEED ROUNDS     (prints the seed; exit 1 on a mismatch)
fn float(f: f64) -> String {
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(f);
    if s.contains('e') || s.ends_with(".0") || significant_digits(s) > 15 {
        format!("{f}")
    } else {
        s.to_string()
    }
}
fn significant_digits(s: &str) -> usize {
    let digits = s.bytes().filter(u8::is_ascii_digit);
    digits.skip_while(|&b| b == b'0').count()
}
fn value(f: f64) -> String {
    if !f.is_finite() {
        "null".into()
    } else if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
        format!("{}", f as i64)
    } else {
        float(f)
    }
}
fn want(f: f64) -> String {
    if !f.is_finite() {
        "null".into()
    } else if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}
fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let seed = args.first().copied().unwrap_or(1) | 1;
    let rounds = args.get(1).copied().unwrap_or(1_000_000);
    println!("seed {seed} rounds {rounds}");
    let mut x = seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut checked, mut ryu_path, mut bad) = (0u64, 0u64, 0u64);
    let mut check = |f: f64| {
        checked += 1;
        let (got, w) = (value(f), want(f));
        if f.is_finite() && f.fract() != 0.0 {
            let mut b = ryu::Buffer::new();
            let s = b.format_finite(f);
            if !(s.contains('e') || s.ends_with(".0") || significant_digits(s) > 15) {
                ryu_path += 1;
            }
        }
        if got != w {
            bad += 1;
            if bad < 20 {
                println!("MISMATCH bits {:#x}: got {got} want {w}", f.to_bits());
            }
        }
    };
    for _ in 0..rounds {
        let r = next();
        let digits = 1 + (r % 15) as u32;
        let mant = next() % 10u64.pow(digits);
        let exp = (next() % 30) as i32 - 12; // 10^-12 .. 10^17 overall
        let s = format!("{mant}e{}", exp - digits as i32);
        let f: f64 = s.parse().unwrap();
        for g in [f, -f] {
            check(g);
            for k in 1..=3u64 {
                check(f64::from_bits(g.to_bits().wrapping_add(k)));
                check(f64::from_bits(g.to_bits().wrapping_sub(k)));
            }
        }
        let (a, b) = ((next() % 100_000) as f64, (1 + next() % 1000) as f64);
        check(a / b);
        check(a / b * 0.1 + 0.2);
        let p = f64::from_bits(((next() % 2046 + 1) << 52) | (next() % 8));
        check(p);
        check(f64::from_bits(p.to_bits() - 1));
    }
    println!("checked {checked} (ryu path {ryu_path}), mismatches {bad}");
    std::process::exit(if bad > 0 { 1 } else { 0 });
}
