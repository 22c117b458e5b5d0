//! Pages fetched lately, so a model asking again within minutes costs no request.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::{ExtractMode, Page};

/// What a page is cached under: the normalized URL asked for, the mode and `max_chars`
/// (the same page cut shorter is another entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The URL as the URL parser normalized it.
    pub url: String,
    /// The extract mode.
    pub mode: ExtractMode,
    /// The effective `max_chars`.
    pub max_chars: usize,
}

/// Pages by [`CacheKey`], each kept for a time to live, at most so many entries and so
/// many bytes of text; the oldest go first. The clock is the caller's (`now` on every
/// call), so tests move time by hand.
#[derive(Debug)]
pub struct Cache {
    ttl: Duration,
    max_entries: usize,
    max_bytes: usize,
    entries: HashMap<CacheKey, Entry>,
    /// Keys from oldest to newest insertion (a key replaced is moved to the back).
    order: VecDeque<CacheKey>,
    bytes: usize,
}

#[derive(Debug)]
struct Entry {
    page: Page,
    stored: Instant,
}

// === impl Cache ===

impl Cache {
    /// An empty cache keeping pages for `ttl`, at most `max_entries` of them and
    /// `max_bytes` of their text.
    pub fn new(ttl: Duration, max_entries: usize, max_bytes: usize) -> Cache {
        Cache {
            ttl,
            max_entries,
            max_bytes,
            entries: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
        }
    }

    /// The page under `key` if it was stored less than the time to live before `now`.
    pub fn get(&mut self, key: &CacheKey, now: Instant) -> Option<Page> {
        let entry = self.entries.get(key)?;
        if now.saturating_duration_since(entry.stored) < self.ttl {
            return Some(entry.page.clone());
        }
        self.remove(key);
        None
    }

    /// Keeps `page` under `key` from `now`, dropping expired entries, then the oldest
    /// until the bounds hold. A page larger than the whole byte bound is not kept.
    pub fn insert(&mut self, key: CacheKey, page: Page, now: Instant) {
        self.remove(&key);
        let size = Self::size(&key, &page);
        if size > self.max_bytes || self.max_entries == 0 {
            return;
        }
        self.expire(now);
        while self.entries.len() + 1 > self.max_entries || self.bytes + size > self.max_bytes {
            let Some(oldest) = self.order.front().cloned() else {
                break;
            };
            self.remove(&oldest);
        }
        self.bytes += size;
        self.order.push_back(key.clone());
        self.entries.insert(key, Entry { page, stored: now });
    }

    /// How many pages it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes of text (and keys) it holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn expire(&mut self, now: Instant) {
        while let Some(oldest) = self.order.front() {
            let expired = self
                .entries
                .get(oldest)
                .is_none_or(|entry| now.saturating_duration_since(entry.stored) >= self.ttl);
            if !expired {
                break;
            }
            let oldest = oldest.clone();
            self.remove(&oldest);
        }
    }

    fn remove(&mut self, key: &CacheKey) {
        if let Some(entry) = self.entries.remove(key) {
            self.bytes -= Self::size(key, &entry.page);
            self.order.retain(|k| k != key);
        }
    }

    /// What an entry counts for: its text and the strings beside it.
    fn size(key: &CacheKey, page: &Page) -> usize {
        key.url.len()
            + page.url.len()
            + page.text.len()
            + page.title.as_ref().map_or(0, String::len)
            + page.content_type.as_ref().map_or(0, String::len)
    }
}
