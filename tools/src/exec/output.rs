//! The command's output, kept to a cap: its head and its tail, with a marker in the middle
//! saying how much was left out. The end of a build log holds the error and its beginning
//! says what ran, so both ends are worth more than a prefix twice as long.

use std::collections::VecDeque;

/// Output kept up to a cap: the first half of the cap as it came, then the last half in a
/// ring that drops its oldest bytes.
#[derive(Debug)]
pub(crate) struct Capped {
    head: Vec<u8>,
    head_cap: usize,
    tail: VecDeque<u8>,
    tail_cap: usize,
    total: u64,
}

// === impl Capped ===

impl Capped {
    /// A buffer keeping at most `cap` bytes.
    pub(crate) fn new(cap: usize) -> Self {
        let head_cap = cap / 2;
        Self {
            head: Vec::new(),
            head_cap,
            tail: VecDeque::new(),
            tail_cap: cap - head_cap,
            total: 0,
        }
    }

    /// Takes `bytes` in: the head first, then the tail ring.
    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.head_cap - self.head.len();
        if room > 0 {
            let n = room.min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        if bytes.len() >= self.tail_cap {
            self.tail.clear();
            self.tail
                .extend(bytes[bytes.len() - self.tail_cap..].iter().copied());
            return;
        }
        let over = (self.tail.len() + bytes.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..over);
        self.tail.extend(bytes.iter().copied());
    }

    /// How many bytes came in, kept or not.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Whether bytes were left out.
    pub(crate) fn truncated(&self) -> bool {
        self.total > (self.head.len() + self.tail.len()) as u64
    }

    /// The text kept: head, marker (when bytes were left out), tail. Invalid UTF-8 (and a
    /// character cut at either side of the marker) reads as U+FFFD.
    pub(crate) fn into_text(self) -> String {
        let omitted = self.total - (self.head.len() + self.tail.len()) as u64;
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        let (a, b) = self.tail.as_slices();
        let tail = [a, b].concat();
        if omitted > 0 {
            text.push_str(&format!(
                "\n[... {omitted} bytes of output omitted; {} kept from the start and the end ...]\n",
                self.total - omitted
            ));
        }
        text.push_str(&String::from_utf8_lossy(&tail));
        text
    }
}
