//! A simulated disk: a redb storage backend that records what was synced, so a test can cut
//! the power (unsynced writes lost, torn at 512-byte sectors and reordered) or inject I/O errors
//! after N calls. Used by `tests/storage_faults.rs` and the `model_crash` fuzz target.

use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

const SECTOR: usize = 512;

/// One write that reached the "disk cache" but not yet the platter.
#[derive(Debug, Clone)]
pub enum Pending {
    Write { offset: usize, data: Vec<u8> },
    SetLen(usize),
}

#[derive(Debug, Default)]
pub struct DiskState {
    /// What reads see: every write so far.
    pub live: Vec<u8>,
    /// What survives a power cut: the image at the last sync.
    pub durable: Vec<u8>,
    /// Writes since the last sync, in order.
    pub pending: Vec<Pending>,
    /// Backend calls so far.
    pub ops: u64,
    /// I/O error injection: calls after this many fail.
    pub fail_after: Option<u64>,
    /// Power loss: after this many calls the power is off, and every call fails.
    pub power_off_after: Option<u64>,
}

impl DiskState {
    fn check(&mut self) -> io::Result<()> {
        self.ops += 1;
        if self.power_off_after.is_some_and(|n| self.ops > n) {
            return Err(io::Error::other("the power is off"));
        }
        if self.fail_after.is_some_and(|n| self.ops > n) {
            return Err(io::Error::other("injected I/O error"));
        }
        Ok(())
    }

    /// The image after a power cut: the synced state plus a random subset of the unsynced
    /// writes, each possibly torn (only some of its sectors), applied in a random order.
    pub fn after_power_cut(&self, rng: &mut fastrand::Rng) -> Vec<u8> {
        let mut image = self.durable.clone();
        let mut pending = self.pending.clone();
        rng.shuffle(&mut pending);
        for op in pending {
            if rng.bool() {
                continue; // lost
            }
            match op {
                Pending::SetLen(len) => image.resize(len, 0),
                Pending::Write { offset, data } => {
                    for (i, sector) in data.chunks(SECTOR).enumerate() {
                        if rng.u8(0..4) == 0 {
                            continue; // torn: this sector never made it
                        }
                        let at = offset + i * SECTOR;
                        if image.len() < at + sector.len() {
                            image.resize(at + sector.len(), 0);
                        }
                        image[at..at + sector.len()].copy_from_slice(sector);
                    }
                }
            }
        }
        image
    }
}

/// The simulated disk; clones share it, so the test keeps a handle while redb owns another.
#[derive(Debug, Clone, Default)]
pub struct SimDisk(pub Arc<Mutex<DiskState>>);

impl SimDisk {
    pub fn with_image(image: Vec<u8>) -> SimDisk {
        SimDisk(Arc::new(Mutex::new(DiskState {
            live: image.clone(),
            durable: image,
            ..DiskState::default()
        })))
    }
}

impl redb::StorageBackend for SimDisk {
    fn len(&self) -> io::Result<u64> {
        let mut disk = self.0.lock();
        disk.check()?;
        Ok(disk.live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let mut disk = self.0.lock();
        disk.check()?;
        let start = offset as usize;
        let end = start + out.len();
        if end > disk.live.len() {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        out.copy_from_slice(&disk.live[start..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut disk = self.0.lock();
        disk.check()?;
        disk.live.resize(len as usize, 0);
        disk.pending.push(Pending::SetLen(len as usize));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut disk = self.0.lock();
        disk.check()?;
        disk.durable = disk.live.clone();
        disk.pending.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut disk = self.0.lock();
        disk.check()?;
        let start = offset as usize;
        if disk.live.len() < start + data.len() {
            disk.live.resize(start + data.len(), 0);
        }
        disk.live[start..start + data.len()].copy_from_slice(data);
        disk.pending.push(Pending::Write {
            offset: start,
            data: data.to_vec(),
        });
        Ok(())
    }
}
