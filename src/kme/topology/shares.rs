//! A key split into XOR shares, one per node-disjoint path: all shares but one are random,
//! the last is the key XOR all of them. Any set of fewer than all shares is independent of
//! the key (each missing share is a one-time pad over it), so a trusted node that sees one
//! path's share learns nothing; the slave's KME joins them.

use zeroize::Zeroizing;

/// Why shares could not be made or joined.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShareError {
    /// Fewer than two shares asked for (one share is the key itself).
    #[error("a key is split into at least 2 shares, not {0}")]
    TooFew(usize),
    /// Shares of different lengths.
    #[error("shares of different lengths ({0} and {1} bytes)")]
    Lengths(usize, usize),
}

/// Splits `key` into `count` shares whose XOR is the key; `fill` fills a share with random
/// bytes (the system's CSPRNG in the KME).
pub fn split(
    key: &[u8],
    count: usize,
    mut fill: impl FnMut(&mut [u8]),
) -> Result<Vec<Zeroizing<Vec<u8>>>, ShareError> {
    if count < 2 {
        return Err(ShareError::TooFew(count));
    }
    let mut last = Zeroizing::new(key.to_vec());
    let mut shares = Vec::with_capacity(count);
    for _ in 1..count {
        let mut share = Zeroizing::new(vec![0u8; key.len()]);
        fill(&mut share);
        for (l, s) in last.iter_mut().zip(share.iter()) {
            *l ^= s;
        }
        shares.push(share);
    }
    shares.push(last);
    Ok(shares)
}

/// Joins shares back into the key.
pub fn join(shares: &[Zeroizing<Vec<u8>>]) -> Result<Zeroizing<Vec<u8>>, ShareError> {
    let Some(first) = shares.first() else {
        return Err(ShareError::TooFew(0));
    };
    let mut key = first.clone();
    for share in &shares[1..] {
        if share.len() != key.len() {
            return Err(ShareError::Lengths(key.len(), share.len()));
        }
        for (k, s) in key.iter_mut().zip(share.iter()) {
            *k ^= s;
        }
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn shares_join_to_the_key_and_no_share_is_the_key() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        let key: Vec<u8> = (0..32).collect();
        for count in 2..5 {
            let shares = split(&key, count, |b| rng.fill_bytes(b)).unwrap();
            assert_eq!(shares.len(), count);
            assert!(shares.iter().all(|s| s.len() == 32 && s.as_slice() != key));
            assert_eq!(join(&shares).unwrap().as_slice(), key);
            // all but one share join to something else than the key
            assert_ne!(join(&shares[1..]).unwrap().as_slice(), key);
        }
        assert_eq!(
            split(&key, 1, |b| rng.fill_bytes(b)).unwrap_err(),
            ShareError::TooFew(1)
        );
    }

    #[test]
    fn shares_of_different_lengths_are_refused() {
        let shares = vec![Zeroizing::new(vec![1u8; 32]), Zeroizing::new(vec![2u8; 16])];
        assert_eq!(join(&shares).unwrap_err(), ShareError::Lengths(32, 16));
    }
}
