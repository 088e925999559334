//! IEEE 754 binary16 (f16) and bfloat16 (bf16) conversions for stored weights, written out by hand (a few
//! lines each; no crate needed).
//!
//! f16: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits; largest finite 65504, smallest normal
//! 2^-14, smallest subnormal 2^-24. bf16: the top 16 bits of an f32 (8 exponent bits, 7 mantissa bits).
//! f32 -> narrow conversions round to nearest, ties to even, as IEEE 754 and PyTorch's `.half()` do; a
//! finite value that rounds beyond the largest finite value becomes infinity (the callers turn that into an
//! error). NaN stays NaN (quiet).

/// f32 to f16 bits, rounding to nearest even. Values at or above 65520 in magnitude (half-way between 65504
/// and 2^16, which ties to the even 2^16) overflow to infinity.
pub fn f32_to_f16(value: f32) -> u16 {
    let bits = value.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exponent = ((bits >> 23) & 0xff) as i32;
    let mantissa = bits & 0x007f_ffff;
    if exponent == 0xff {
        // Infinity keeps its sign; NaN becomes a quiet NaN keeping the top payload bits.
        return if mantissa == 0 { sign | 0x7c00 } else { sign | 0x7e00 | (mantissa >> 13) as u16 };
    }
    // Rebias: f32 exponent 127 is f16 exponent 15.
    let half_exponent = exponent - 127 + 15;
    if half_exponent >= 0x1f {
        return sign | 0x7c00;
    }
    if half_exponent <= 0 {
        // Subnormal f16: value = k * 2^-24. With the implicit bit, the f32 value is m * 2^(exponent - 150),
        // so k = m * 2^(exponent - 126): shift right by 126 - exponent = 14 - half_exponent bits.
        if half_exponent < -10 {
            // Below 2^-25 (half the smallest subnormal): rounds to zero.
            return sign;
        }
        let m = mantissa | 0x0080_0000;
        let shift = (14 - half_exponent) as u32; // 14..=24
        return sign | round_shift(m, shift) as u16; // a carry into bit 10 gives the smallest normal, 0x0400
    }
    // Normal: exponent and the top 10 mantissa bits; rounding may carry into the exponent, up to infinity.
    let truncated = ((half_exponent as u32) << 10) | (mantissa >> 13);
    let rounded = truncated + round_up(mantissa, 13) as u32;
    sign | rounded as u16
}

/// Whether dropping the low `shift` bits of `m` rounds up (nearest, ties to even).
fn round_up(m: u32, shift: u32) -> bool {
    let remainder = m & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    remainder > half || (remainder == half && (m >> shift) & 1 == 1)
}

/// `m >> shift` rounded to nearest, ties to even.
fn round_shift(m: u32, shift: u32) -> u32 {
    (m >> shift) + round_up(m, shift) as u32
}

/// f16 bits to f32 (exact: every f16 is an f32).
pub fn f16_to_f32(half: u16) -> f32 {
    let sign = ((half & 0x8000) as u32) << 16;
    let exponent = ((half >> 10) & 0x1f) as u32;
    let mantissa = (half & 0x3ff) as u32;
    let bits = match exponent {
        // Zero or subnormal: mantissa * 2^-24, exact in f32 (which is normal there).
        0 => {
            let magnitude = mantissa as f32 * 2f32.powi(-24);
            return if sign != 0 { -magnitude } else { magnitude };
        }
        0x1f => sign | 0x7f80_0000 | (mantissa << 13),
        _ => sign | ((exponent + 127 - 15) << 23) | (mantissa << 13),
    };
    f32::from_bits(bits)
}

/// f32 to bf16 bits, rounding to nearest even. Finite values that round above bf16's largest finite value
/// (about 3.3895e38) become infinity.
pub fn f32_to_bf16(value: f32) -> u16 {
    let bits = value.to_bits();
    if value.is_nan() {
        return ((bits >> 16) as u16) | 0x0040;
    }
    // Adding 0x7fff plus the lowest kept bit rounds to nearest, ties to even; a carry may reach infinity.
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// bf16 bits to f32 (exact).
pub fn bf16_to_f32(half: u16) -> f32 {
    f32::from_bits((half as u32) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact values derived from the format: bits = sign << 15 | exponent << 10 | mantissa.
    #[test]
    fn f16_known_values() {
        let cases: [(f32, u16); 16] = [
            (0.0, 0x0000),
            (-0.0, 0x8000),
            (1.0, 0x3c00),                        // exponent 15, mantissa 0
            (-2.0, 0xc000),                       // sign, exponent 16
            (0.5, 0x3800),                        // exponent 14
            (65504.0, 0x7bff),                    // (2 - 2^-10) * 2^15: largest finite
            (65519.0, 0x7bff),                    // below the 65520 midpoint: rounds down to 65504
            (2f32.powi(-14), 0x0400),             // smallest normal
            (2f32.powi(-24), 0x0001),             // smallest subnormal
            (1023.0 * 2f32.powi(-24), 0x03ff),    // largest subnormal
            (2f32.powi(-25), 0x0000),             // exactly half the smallest subnormal: tie to even (0)
            (1.5 * 2f32.powi(-25), 0x0001),       // above the midpoint
            (3.0 * 2f32.powi(-25), 0x0002),       // 1.5 ulp of subnormals: tie between 1 and 2, to even 2
            (1.0 + 2f32.powi(-11), 0x3c00),       // tie between 1.0 (even) and 1 + 2^-10
            (1.0 + 3.0 * 2f32.powi(-11), 0x3c02), // tie between 0x3c01 and 0x3c02 (even)
            (0.1, 0x2e66), // 1.6 * 2^-4: exponent 11, mantissa round(0.6 * 1024 = 614.4) = 614 = 0x266
        ];
        for (value, bits) in cases {
            assert_eq!(f32_to_f16(value), bits, "{value:e} -> {:#06x}, expected {bits:#06x}", f32_to_f16(value));
        }
        // Overflow: the midpoint 65520 ties to the even 2^16, which is infinity.
        assert_eq!(f32_to_f16(65520.0), 0x7c00);
        assert_eq!(f32_to_f16(-1e6), 0xfc00);
        assert_eq!(f32_to_f16(f32::INFINITY), 0x7c00);
        assert!(f16_to_f32(f32_to_f16(f32::NAN)).is_nan());
        // A carry out of the subnormal range lands on the smallest normal.
        assert_eq!(f32_to_f16(2f32.powi(-14) - 2f32.powi(-26)), 0x0400);
    }

    #[test]
    fn f16_to_f32_known_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8001), -(2f32.powi(-24)));
        assert_eq!(f16_to_f32(0x2e66), 614.0 / 1024.0 * 2f32.powi(-4) + 2f32.powi(-4));
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert!(f16_to_f32(0x8000).is_sign_negative() && f16_to_f32(0x8000) == 0.0);
    }

    #[test]
    fn every_f16_round_trips() {
        for bits in 0..=u16::MAX {
            let value = f16_to_f32(bits);
            if value.is_nan() {
                assert!(f16_to_f32(f32_to_f16(value)).is_nan());
            } else {
                assert_eq!(f32_to_f16(value), bits, "{bits:#06x} = {value:e}");
            }
        }
    }

    #[test]
    fn bf16_known_values() {
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        assert_eq!(f32_to_bf16(-2.0), 0xc000);
        assert_eq!(f32_to_bf16(1.0 + 2f32.powi(-8)), 0x3f80); // tie: 1.0 is even
        assert_eq!(f32_to_bf16(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82); // tie between 0x3f81 and 0x3f82 (even)
        assert_eq!(f32_to_bf16(1.0 + 2f32.powi(-8) + 2f32.powi(-20)), 0x3f81); // just above the tie
        assert_eq!(bf16_to_f32(0x7f7f), f32::from_bits(0x7f7f_0000)); // largest finite bf16
        assert_eq!(f32_to_bf16(f32::from_bits(0x7f7f_0000)), 0x7f7f);
        assert_eq!(f32_to_bf16(f32::MAX), 0x7f80); // rounds up to infinity
        assert!(bf16_to_f32(f32_to_bf16(f32::NAN)).is_nan());
        for bits in 0..=u16::MAX {
            let value = bf16_to_f32(bits);
            if !value.is_nan() {
                assert_eq!(f32_to_bf16(value), bits);
            }
        }
    }
}
