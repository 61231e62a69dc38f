//! The per-epoch shuffle seed every example uses (`mnist` includes this file alone).

/// The seed of epoch `epoch`'s shuffle: a SplitMix64 step of `seed` and `epoch`, so that
/// nearby seeds do not share epochs' orders.
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed
        .wrapping_add((epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
