//! Reading IDX datasets (MNIST, Fashion-MNIST, ...) into tensors.
//!
//! [`read_idx`] reads one IDX file of unsigned bytes, raw or gzip-compressed.
//! [`load_dir`] reads the four files of an MNIST-style directory into a [`Dataset`]
//! of image and label tensors, and [`Split::batches`] walks a split in (optionally
//! shuffled) mini-batches. [`find_bundled`] finds the 10,000-digit MNIST subset that
//! ships with this crate (in the repository and in the published package), also from
//! a binary that was copied elsewhere ([`DATA_DIR_ENV`]).
//!
//! ```
//! use tch::{Device, Kind};
//! use tch2pc::data::{find_bundled, load_dir};
//!
//! let mnist = load_dir(find_bundled(None)?, Kind::Float, Device::Cpu)?;
//! assert_eq!(mnist.train.len(), 8000);
//! assert_eq!(mnist.test.images.size(), [2000, 1, 28, 28]);
//! for batch in mnist.train.batches(1000, Some(42))? {
//!     let (x, y) = batch?;
//!     assert_eq!(x.size(), [1000, 1, 28, 28]);
//!     assert_eq!(y.size(), [1000]);
//! }
//! # Ok::<(), tch2pc::PcError>(())
//! ```

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::iter::FusedIterator;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use tch::{Device, Kind, Tensor};

use crate::error::{PcError, Result};

/// IDX type byte for unsigned bytes, the only element type supported.
const IDX_UBYTE: u8 = 0x08;
/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Largest buffer reserved up front from the (untrusted) dimensions of a file.
const PREALLOC_LIMIT: usize = 64 << 20;

/// The contents of an IDX file of unsigned bytes: its dimensions and its data.
///
/// `data` holds the elements in row-major order (the last dimension varies fastest),
/// and `data.len()` is the product of `dims`.
///
/// ```
/// use tch2pc::data::{find_bundled, read_idx, IdxArray};
///
/// let labels: IdxArray = read_idx(find_bundled(None)?.join("t10k-labels-idx1-ubyte.gz"))?;
/// assert_eq!(labels.dims, [2000]);
/// assert_eq!(labels.data.len(), 2000);
/// assert_eq!(&labels.data[..3], &[0, 2, 2]);
/// # Ok::<(), tch2pc::PcError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The size of each dimension, outermost first (`[count, rows, cols]` for images).
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes (type byte `0x08`), raw or gzip-compressed.
///
/// Compression is detected from the content (the gzip magic bytes `1f 8b`), not from
/// the file name. The file must hold exactly the number of bytes its dimensions call
/// for.
///
/// # Errors
///
/// - [`PcError::Io`] if the file cannot be opened or read (a missing file, say).
/// - [`PcError::Format`] if it is not an IDX file (bad magic number), its element
///   type is not unsigned byte, its gzip stream is corrupt, or its data is shorter or
///   longer than its dimensions say (the message gives both byte counts).
///
/// ```
/// use tch2pc::data::read_idx;
/// use tch2pc::PcError;
///
/// let images = read_idx("data/mnist-10k/train-images-idx3-ubyte.gz")?;
/// assert_eq!(images.dims, [8000, 28, 28]);
/// assert_eq!(images.data.len(), 8000 * 28 * 28);
///
/// let missing = read_idx("data/mnist-10k/no-such-file").unwrap_err();
/// assert!(matches!(missing, PcError::Io { .. }));
/// # Ok::<(), PcError>(())
/// ```
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    let io_err = |source| PcError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let mut head = [0u8; 2];
    let n = read_full(&mut file, &mut head).map_err(io_err)?;
    let gzip = n == head.len() && head == GZIP_MAGIC;
    // Put the peeked bytes back in front of the rest of the file.
    let stream = io::Cursor::new(head[..n].to_vec()).chain(BufReader::new(file));
    if gzip {
        parse_idx(path, MultiGzDecoder::new(stream), true)
    } else {
        parse_idx(path, stream, false)
    }
}

/// Parses the IDX content of `reader` (already decompressed); `path` is for errors.
fn parse_idx<R: Read>(path: &Path, mut reader: R, gzip: bool) -> Result<IdxArray> {
    let format = |message: String| PcError::Format {
        path: path.to_path_buf(),
        message,
    };
    let read_err = |e: io::Error| read_error(path, e, gzip);

    let mut magic = [0u8; 4];
    let n = read_full(&mut reader, &mut magic).map_err(read_err)?;
    if n < magic.len() {
        return Err(format(format!(
            "not an IDX file: {n} bytes, shorter than the 4-byte IDX header"
        )));
    }
    if magic[..2] != [0, 0] {
        return Err(format(format!(
            "not an IDX file: bad magic number 0x{:08x} (an IDX file starts with two zero \
             bytes, a type byte and a dimension count)",
            u32::from_be_bytes(magic)
        )));
    }
    if magic[2] != IDX_UBYTE {
        return Err(format(format!(
            "unsupported IDX data type 0x{:02x} ({}): only 0x08 (unsigned byte) is supported",
            magic[2],
            idx_type_name(magic[2])
        )));
    }

    let ndims = usize::from(magic[3]);
    let mut raw_dims = vec![0u8; 4 * ndims];
    let n = read_full(&mut reader, &mut raw_dims).map_err(read_err)?;
    if n < raw_dims.len() {
        return Err(format(format!(
            "truncated IDX header: {ndims} dimension sizes need {} bytes, found {n}",
            raw_dims.len()
        )));
    }
    let dims = raw_dims
        .chunks_exact(4)
        .map(|c| {
            let d = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            usize::try_from(d).map_err(|_| format(format!("dimension {d} is too large")))
        })
        .collect::<Result<Vec<usize>>>()?;
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format(format!("dimensions {dims:?} describe too many elements")))?;

    // Read at most `expected` bytes; the buffer grows as data actually arrives, so a
    // header that lies about its size cannot make us allocate a huge buffer.
    let mut data = Vec::with_capacity(expected.min(PREALLOC_LIMIT));
    let limit = u64::try_from(expected).unwrap_or(u64::MAX);
    reader
        .by_ref()
        .take(limit)
        .read_to_end(&mut data)
        .map_err(read_err)?;
    if data.len() < expected {
        return Err(format(format!(
            "truncated data: dimensions {dims:?} call for {expected} bytes of data, found {} bytes",
            data.len()
        )));
    }
    let extra = io::copy(&mut reader, &mut io::sink()).map_err(read_err)?;
    if extra > 0 {
        return Err(format(format!(
            "trailing bytes: dimensions {dims:?} call for {expected} bytes of data, found {} \
             bytes ({extra} too many)",
            limit.saturating_add(extra)
        )));
    }
    Ok(IdxArray { dims, data })
}

/// Reads into `buf` until it is full or the input ends; returns the number of bytes read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Turns a read error into a [`PcError`]: bad gzip data is a format error, the rest I/O.
fn read_error(path: &Path, e: io::Error, gzip: bool) -> PcError {
    let corrupt = matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
    );
    if gzip && corrupt {
        PcError::Format {
            path: path.to_path_buf(),
            message: format!("corrupt gzip data: {e}"),
        }
    } else {
        PcError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    }
}

/// The name of an IDX element type, for error messages.
fn idx_type_name(byte: u8) -> &'static str {
    match byte {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0b => "16-bit integer",
        0x0c => "32-bit integer",
        0x0d => "32-bit float",
        0x0e => "64-bit float",
        _ => "not an IDX type",
    }
}

/// One part of a dataset (training or test): images and their labels.
///
/// [`load_dir`] fills `images` with shape `(N, 1, rows, cols)`, values in `[0, 1]`
/// (grey level / 255) of the kind it was given, and `labels` with shape `(N,)` and
/// kind `Int64`, both on the device it was given.
///
/// ```
/// use tch::{Device, Kind};
/// use tch2pc::data::{find_bundled, load_dir, Split};
///
/// let Split { images, labels } = load_dir(find_bundled(None)?, Kind::Float, Device::Cpu)?.test;
/// assert_eq!(images.size(), [2000, 1, 28, 28]);
/// assert_eq!(labels.size(), [2000]);
/// assert_eq!(labels.kind(), Kind::Int64);
/// # Ok::<(), tch2pc::PcError>(())
/// ```
#[derive(Debug)]
pub struct Split {
    /// Images, `(N, 1, rows, cols)`, values in `[0, 1]`.
    pub images: Tensor,
    /// Labels, `(N,)`, `Int64`.
    pub labels: Tensor,
}

impl Split {
    /// The number of examples (the first dimension of `labels`).
    ///
    /// ```
    /// use tch::{Device, Kind};
    /// use tch2pc::data::{find_bundled, load_dir};
    ///
    /// let mnist = load_dir(find_bundled(None)?, Kind::Float, Device::Cpu)?;
    /// assert_eq!((mnist.train.len(), mnist.test.len()), (8000, 2000));
    /// # Ok::<(), tch2pc::PcError>(())
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.labels
            .size()
            .first()
            .map_or(0, |&n| usize::try_from(n).unwrap_or(0))
    }

    /// Whether the split holds no examples.
    ///
    /// ```
    /// use tch::{Device, Kind, Tensor};
    /// use tch2pc::data::Split;
    ///
    /// let empty = Split {
    ///     images: Tensor::zeros([0, 1, 28, 28], (Kind::Float, Device::Cpu)),
    ///     labels: Tensor::zeros([0], (Kind::Int64, Device::Cpu)),
    /// };
    /// assert!(empty.is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Walks the split in mini-batches of `batch_size` examples; the last batch holds
    /// the remainder and may be smaller.
    ///
    /// With `shuffle_seed: None` the batches follow the stored order and are views into
    /// `images` and `labels` (no copy; writing into them in place writes into the
    /// split). With `Some(seed)` the examples are visited in a pseudo-random order that
    /// depends only on `seed` and [`len`](Split::len) (the same on every platform and
    /// thread), and each batch is a fresh copy. Pass a different seed per epoch, e.g.
    /// `Some(epoch)`, for a new order each epoch.
    ///
    /// # Errors
    ///
    /// [`PcError::InvalidConfig`] if `batch_size` is 0, [`PcError::ShapeMismatch`] if
    /// `images` and `labels` disagree on the number of examples,
    /// [`PcError::DeviceMismatch`] if they live on different devices, and
    /// [`PcError::Torch`] if libtorch fails. Each item of the iterator is a `Result`
    /// too, as libtorch may fail while taking a batch.
    ///
    /// ```
    /// use tch::{Device, Kind};
    /// use tch2pc::data::{find_bundled, load_dir};
    ///
    /// let test = load_dir(find_bundled(None)?, Kind::Float, Device::Cpu)?.test;
    /// let batches = test.batches(300, Some(7))?;
    /// assert_eq!(batches.len(), 7); // 6 batches of 300 and one of 200
    /// let mut seen = 0;
    /// for batch in batches {
    ///     let (x, y) = batch?;
    ///     assert_eq!(x.size()[0], y.size()[0]);
    ///     seen += y.size()[0];
    /// }
    /// assert_eq!(seen, 2000);
    /// # Ok::<(), tch2pc::PcError>(())
    /// ```
    pub fn batches(&self, batch_size: usize, shuffle_seed: Option<u64>) -> Result<Batches<'_>> {
        if batch_size == 0 {
            return Err(PcError::InvalidConfig(
                "batch_size must be at least 1".to_string(),
            ));
        }
        let image_shape = self.images.size();
        let label_shape = self.labels.size();
        let count = match (image_shape.first(), label_shape.first()) {
            (Some(&n), Some(&m)) if n == m => n,
            (Some(&n), _) => {
                return Err(PcError::ShapeMismatch {
                    what: "labels".to_string(),
                    expected: format!("{n} rows, one per image"),
                    found: label_shape,
                })
            }
            (None, _) => {
                return Err(PcError::ShapeMismatch {
                    what: "images".to_string(),
                    expected: "at least one dimension (the examples)".to_string(),
                    found: image_shape,
                })
            }
        };
        let device = self.images.device();
        if self.labels.device() != device {
            return Err(PcError::DeviceMismatch {
                what: "labels".to_string(),
                expected: device,
                found: self.labels.device(),
            });
        }
        let order = match shuffle_seed {
            None => None,
            Some(seed) => {
                let order = permutation(count, seed);
                Some(Tensor::f_from_slice(&order)?.f_to_device(device)?)
            }
        };
        Ok(Batches {
            split: self,
            order,
            count,
            batch_size: i64::try_from(batch_size).unwrap_or(i64::MAX),
            next: 0,
        })
    }
}

/// The iterator of mini-batches `(images, labels)` returned by [`Split::batches`].
///
/// Each item is a `Result`, since libtorch may fail while taking a batch. It knows its
/// length ([`ExactSizeIterator`]).
///
/// ```
/// use tch::{Device, Kind};
/// use tch2pc::data::{find_bundled, load_dir, Batches};
///
/// let train = load_dir(find_bundled(None)?, Kind::Float, Device::Cpu)?.train;
/// let mut batches: Batches<'_> = train.batches(64, None)?;
/// assert_eq!(batches.len(), 125);
/// let (x, y) = batches.next().unwrap()?;
/// assert_eq!(x.size(), [64, 1, 28, 28]);
/// assert_eq!(y.size(), [64]);
/// # Ok::<(), tch2pc::PcError>(())
/// ```
#[derive(Debug)]
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct Batches<'a> {
    split: &'a Split,
    /// The visiting order (on the images' device), or `None` for the stored order.
    order: Option<Tensor>,
    count: i64,
    batch_size: i64,
    /// Index (in visiting order) of the first example of the next batch.
    next: i64,
}

impl Batches<'_> {
    fn batch_at(&self, start: i64, len: i64) -> Result<(Tensor, Tensor)> {
        let Split { images, labels } = self.split;
        Ok(match &self.order {
            None => (
                images.f_narrow(0, start, len)?,
                labels.f_narrow(0, start, len)?,
            ),
            Some(order) => {
                let index = order.f_narrow(0, start, len)?;
                (
                    images.f_index_select(0, &index)?,
                    labels.f_index_select(0, &index)?,
                )
            }
        })
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.count {
            return None;
        }
        let start = self.next;
        let len = self.batch_size.min(self.count - start);
        self.next = start + len;
        let batch = self.batch_at(start, len);
        if batch.is_err() {
            // Stop after an error.
            self.next = self.count;
        }
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.count - self.next).max(0);
        let batches = left / self.batch_size + i64::from(left % self.batch_size != 0);
        let batches = usize::try_from(batches).unwrap_or(usize::MAX);
        (batches, Some(batches))
    }
}

impl ExactSizeIterator for Batches<'_> {}

impl FusedIterator for Batches<'_> {}

/// A permutation of `0..n` drawn with Fisher–Yates from a SplitMix64 stream.
fn permutation(n: i64, seed: u64) -> Vec<i64> {
    let mut order: Vec<i64> = (0..n).collect();
    let mut rng = SplitMix64(seed);
    for i in (1..order.len()).rev() {
        // `i + 1` fits in u64 and the result is at most `i`, so both casts are lossless.
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// The SplitMix64 generator (Steele, Lea, Flood 2014).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..bound` (`bound > 0`), without modulo bias (Lemire 2019).
    fn below(&mut self, bound: u64) -> u64 {
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(bound);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

/// A dataset with a training and a test [`Split`], as read by [`load_dir`].
///
/// ```
/// use tch::{Device, Kind};
/// use tch2pc::data::{find_bundled, load_dir, Dataset};
///
/// let Dataset { train, test } = load_dir(find_bundled(None)?, Kind::Float, Device::Cpu)?;
/// assert_eq!(train.len() + test.len(), 10_000);
/// # Ok::<(), tch2pc::PcError>(())
/// ```
#[derive(Debug)]
pub struct Dataset {
    /// The training examples (`train-*` files).
    pub train: Split,
    /// The test examples (`t10k-*` files).
    pub test: Split,
}

/// The four files of an MNIST-style directory, in the order train images, train
/// labels, test images, test labels.
const DATASET_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Loads an MNIST-style dataset (MNIST, Fashion-MNIST, ...) from a directory.
///
/// The directory must hold `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each raw or gzip-compressed
/// with a `.gz` suffix, and each also accepted with a dot before `idx`
/// (`train-images.idx3-ubyte`), as some mirrors name them. When several spellings
/// exist, the first in the order plain, `.gz`, dotted, dotted `.gz` is read.
///
/// Images become tensors of shape `(N, 1, rows, cols)` of `kind` (a floating-point
/// kind), scaled by 1/255 into `[0, 1]`; labels become `(N,)` `Int64` tensors, stored
/// as found (not checked against a number of classes). Both are put on `device`.
///
/// # Errors
///
/// - [`PcError::InvalidConfig`] if `kind` is not a floating-point kind.
/// - [`PcError::Io`] if the directory or one of the files is missing (the message
///   lists every missing file) or cannot be read.
/// - [`PcError::Format`] if a file is not a valid IDX file of unsigned bytes (see
///   [`read_idx`]), an images file is not 3-dimensional, a labels file is not
///   1-dimensional, the numbers of images and labels differ, or the training and test
///   images differ in size.
/// - [`PcError::Torch`] if libtorch fails (moving to `device`, say).
///
/// ```
/// use tch::{Device, Kind};
/// use tch2pc::data::load_dir;
///
/// let mnist = load_dir("data/mnist-10k", Kind::Double, Device::Cpu)?;
/// assert_eq!(mnist.train.images.size(), [8000, 1, 28, 28]);
/// assert_eq!(mnist.train.images.kind(), Kind::Double);
/// assert_eq!(mnist.train.images.max().double_value(&[]), 1.0);
///
/// let missing = load_dir("no/such/dir", Kind::Float, Device::Cpu).unwrap_err();
/// assert!(matches!(missing, tch2pc::PcError::Io { .. }));
/// # Ok::<(), tch2pc::PcError>(())
/// ```
pub fn load_dir(dir: impl AsRef<Path>, kind: Kind, device: Device) -> Result<Dataset> {
    let dir = dir.as_ref();
    if !crate::util::is_float(kind) {
        return Err(PcError::InvalidConfig(format!(
            "images need a floating-point kind (Half, BFloat16, Float or Double), got {kind:?}"
        )));
    }
    let meta = fs::metadata(dir).map_err(|source| PcError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(PcError::Io {
            path: dir.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory (expected a directory of IDX files)",
            ),
        });
    }

    let mut found = Vec::with_capacity(DATASET_FILES.len());
    let mut missing = Vec::new();
    for name in DATASET_FILES {
        match find_file(dir, name)? {
            Some(path) => found.push(path),
            None => missing.push(name),
        }
    }
    let [train_images, train_labels, test_images, test_labels] = found.as_slice() else {
        let first = missing.first().copied().unwrap_or(DATASET_FILES[0]);
        return Err(PcError::Io {
            path: dir.join(first),
            source: io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "missing from {}: {} (each may be raw or end in .gz, and may have '.idx' \
                     for '-idx', as in train-images.idx3-ubyte.gz)",
                    dir.display(),
                    missing.join(", ")
                ),
            ),
        });
    };

    let train = load_split(train_images, train_labels, kind, device)?;
    let test = load_split(test_images, test_labels, kind, device)?;
    let (train_size, test_size) = (train.images.size(), test.images.size());
    if train_size.get(2..) != test_size.get(2..) {
        return Err(PcError::Format {
            path: test_images.clone(),
            message: format!(
                "test images have shape {test_size:?}, the training images {train_size:?}: \
                 rows and columns differ"
            ),
        });
    }
    Ok(Dataset { train, test })
}

/// Finds `name` in `dir` under one of its accepted spellings.
fn find_file(dir: &Path, name: &str) -> Result<Option<PathBuf>> {
    let dotted = name.replacen("-idx", ".idx", 1);
    for candidate in [
        name.to_string(),
        format!("{name}.gz"),
        dotted.clone(),
        format!("{dotted}.gz"),
    ] {
        let path = dir.join(candidate);
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => return Ok(Some(path)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(PcError::Io { path, source }),
        }
    }
    Ok(None)
}

/// Reads one images file and one labels file into a [`Split`].
fn load_split(images_path: &Path, labels_path: &Path, kind: Kind, device: Device) -> Result<Split> {
    let images = read_idx(images_path)?;
    let labels = read_idx(labels_path)?;
    let &[count, rows, cols] = images.dims.as_slice() else {
        return Err(PcError::Format {
            path: images_path.to_path_buf(),
            message: format!(
                "an images file needs 3 dimensions (count, rows, columns), found {} dimensions {:?}",
                images.dims.len(),
                images.dims
            ),
        });
    };
    let &[label_count] = labels.dims.as_slice() else {
        return Err(PcError::Format {
            path: labels_path.to_path_buf(),
            message: format!(
                "a labels file needs 1 dimension (count), found {} dimensions {:?}",
                labels.dims.len(),
                labels.dims
            ),
        });
    };
    if label_count != count {
        return Err(PcError::Format {
            path: labels_path.to_path_buf(),
            message: format!(
                "{label_count} labels, but {} holds {count} images",
                images_path.display()
            ),
        });
    }
    let shape = [count, 1, rows, cols].map(|d| i64::try_from(d).unwrap_or(i64::MAX));
    let images = Tensor::f_from_slice(&images.data)?
        .f_reshape(shape)?
        .f_to_device(device)?
        .f_to_kind(kind)?
        .f_div_scalar(255.0)?;
    let labels = Tensor::f_from_slice(&labels.data)?
        .f_to_device(device)?
        .f_to_kind(Kind::Int64)?;
    Ok(Split { images, labels })
}

/// The environment variable that [`find_bundled`] consults: `TCH2PC_DATA_DIR`, a
/// directory holding the four files of the bundled digits (a copy of `data/mnist-10k`).
///
/// ```
/// assert_eq!(tch2pc::data::DATA_DIR_ENV, "TCH2PC_DATA_DIR");
/// ```
pub const DATA_DIR_ENV: &str = "TCH2PC_DATA_DIR";

/// Finds the MNIST subset bundled with this crate: 8,000 training and 2,000 test
/// digits (28×28, gzip-compressed IDX files), ready for [`load_dir`].
///
/// It looks, in this order, at
///
/// 1. `explicit`, if given (a command-line option, say);
/// 2. the directory named by the environment variable [`DATA_DIR_ENV`]
///    (`TCH2PC_DATA_DIR`), if it is set and not empty;
/// 3. [`bundled_dir`]: `data/mnist-10k` in the directory that this crate was compiled
///    from (the repository, or cargo's copy of the package under `~/.cargo/registry`,
///    which includes the digits).
///
/// and returns the first that is a directory holding all four files (each under any
/// spelling that [`load_dir`] accepts); a place that does not is skipped. The files'
/// contents are not checked here; [`load_dir`] does that. Step 3 fails for a binary
/// that was copied to another machine, or whose build directory was removed: ship
/// `data/mnist-10k` with it and point `TCH2PC_DATA_DIR` (or `explicit`) at it.
///
/// # Errors
///
/// [`PcError::Io`] (of kind [`NotFound`](std::io::ErrorKind::NotFound)) when none of
/// the three places holds the digits; the message names every place, in order, and
/// why each was skipped (not given, not set, no such directory, which files are
/// missing), and says how to fix it. [`PcError::Io`] also if a place cannot be
/// inspected (permission denied, say).
///
/// ```
/// use tch2pc::data::{find_bundled, load_dir};
/// use tch::{Device, Kind};
///
/// // Usually: nothing explicit, and TCH2PC_DATA_DIR unset, so the crate's own copy.
/// let dir = find_bundled(None)?;
/// assert!(dir.join("train-labels-idx1-ubyte.gz").is_file());
/// assert_eq!(load_dir(&dir, Kind::Float, Device::Cpu)?.test.len(), 2000);
///
/// // An explicit directory that holds the digits comes first ...
/// assert_eq!(find_bundled(Some(&dir))?, dir);
/// // ... and one that does not is skipped.
/// let elsewhere = find_bundled(Some(std::path::Path::new("no/such/dir")))?;
/// assert!(elsewhere.join("t10k-images-idx3-ubyte.gz").is_file());
/// # Ok::<(), tch2pc::PcError>(())
/// ```
pub fn find_bundled(explicit: Option<&Path>) -> Result<PathBuf> {
    let from_env = std::env::var_os(DATA_DIR_ENV);
    lookup(explicit, from_env.as_deref(), &bundled_dir())
}

/// [`find_bundled`] with the environment variable's value and the compile-time
/// directory passed in (so that tests can make every place fail).
fn lookup(
    explicit: Option<&Path>,
    from_env: Option<&std::ffi::OsStr>,
    compiled: &Path,
) -> Result<PathBuf> {
    let from_env = from_env.filter(|v| !v.is_empty()).map(Path::new);
    let places: [(String, Option<&Path>); 3] = [
        ("the explicit path".to_string(), explicit),
        (format!("${DATA_DIR_ENV}"), from_env),
        (
            "the crate's directory at compile time".to_string(),
            Some(compiled),
        ),
    ];
    let mut looked = Vec::with_capacity(places.len());
    for (i, (what, dir)) in places.iter().enumerate() {
        let why = match dir {
            None if i == 0 => "not given".to_string(),
            None => "not set".to_string(),
            Some(dir) => match missing_files(dir)? {
                None => return Ok(dir.to_path_buf()),
                Some(why) => format!("{}: {why}", dir.display()),
            },
        };
        looked.push(format!("({}) {what}: {why}", i + 1));
    }
    Err(PcError::Io {
        path: compiled.to_path_buf(),
        source: io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "the MNIST digits bundled with tch2pc were not found; looked at {}. Set \
                 {DATA_DIR_ENV} to a directory holding the four files of the crate's \
                 data/mnist-10k (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, \
                 t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)",
                looked.join("; ")
            ),
        ),
    })
}

/// Why `dir` does not hold an MNIST-style dataset (`None`: it does).
fn missing_files(dir: &Path) -> Result<Option<String>> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Ok(Some("not a directory".to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Some("no such directory".to_string()))
        }
        Err(source) => {
            return Err(PcError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    }
    let mut missing = Vec::new();
    for name in DATASET_FILES {
        if find_file(dir, name)?.is_none() {
            missing.push(name);
        }
    }
    Ok((!missing.is_empty()).then(|| format!("missing {}", missing.join(", "))))
}

/// The directory of the MNIST subset bundled with this crate, as a path fixed at
/// compile time: `data/mnist-10k` in the directory the crate was compiled from
/// (`CARGO_MANIFEST_DIR`).
///
/// The path is absolute and baked into the binary: it is right for tests, examples
/// and binaries run where they were built, and wrong for a binary copied to another
/// machine or run after its build directory is gone. Prefer [`find_bundled`], which
/// also consults an explicit path and the environment variable [`DATA_DIR_ENV`], and
/// says where it looked when the digits are missing.
///
/// The digits are real MNIST digits (LeCun, Cortes, Burges), made available under
/// the Creative Commons Attribution-Share Alike 3.0 license; see `README.md` in that
/// directory for their provenance and class counts.
///
/// ```
/// use tch::{Device, Kind};
/// use tch2pc::data::{bundled_dir, load_dir};
///
/// assert!(bundled_dir().is_absolute());
/// assert!(bundled_dir().ends_with("data/mnist-10k"));
/// assert!(bundled_dir().join("train-images-idx3-ubyte.gz").is_file());
/// let mnist = load_dir(bundled_dir(), Kind::Float, Device::Cpu)?;
/// assert_eq!(mnist.train.len(), 8000);
/// # Ok::<(), tch2pc::PcError>(())
/// ```
#[must_use]
pub fn bundled_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist-10k"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    /// A fresh, empty directory under the system's temporary directory.
    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tch2pc-data-lookup-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn lookup_names_every_place_and_why_it_was_skipped() {
        let root = temp_dir("none");
        let partial = root.join("partial");
        fs::create_dir(&partial).unwrap();
        fs::write(partial.join("train-images-idx3-ubyte.gz"), b"").unwrap();
        fs::write(partial.join("t10k-labels.idx1-ubyte"), b"").unwrap();
        let file = root.join("a-file");
        fs::write(&file, b"x").unwrap();
        let gone = root.join("gone");

        let err = lookup(Some(&partial), Some(file.as_os_str()), &gone).unwrap_err();
        let message = err.to_string();
        match &err {
            PcError::Io { path, source } => {
                assert_eq!(*path, gone);
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected Io, got {other:?}"),
        }
        let expected = format!(
            "looked at (1) the explicit path: {}: missing train-labels-idx1-ubyte, \
             t10k-images-idx3-ubyte; (2) $TCH2PC_DATA_DIR: {}: not a directory; \
             (3) the crate's directory at compile time: {}: no such directory. Set \
             TCH2PC_DATA_DIR to a directory",
            partial.display(),
            file.display(),
            gone.display()
        );
        assert!(message.contains(&expected), "{message}");

        // Nothing given and nothing set; an empty variable counts as unset.
        for from_env in [None, Some(OsStr::new(""))] {
            let message = lookup(None, from_env, &gone).unwrap_err().to_string();
            assert!(
                message.contains(
                    "(1) the explicit path: not given; (2) $TCH2PC_DATA_DIR: not set; (3)"
                ),
                "{message}"
            );
        }
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn lookup_takes_the_first_place_that_holds_the_files() {
        let root = temp_dir("order");
        let [a, b, c] = ["a", "b", "c"].map(|name| {
            let dir = root.join(name);
            fs::create_dir(&dir).unwrap();
            // Every accepted spelling counts: plain, .gz, dotted, dotted .gz.
            for (file, suffix) in DATASET_FILES.iter().zip(["", ".gz", "", ".gz"]) {
                let file = if suffix.is_empty() {
                    file.replacen("-idx", ".idx", 1)
                } else {
                    format!("{file}{suffix}")
                };
                fs::write(dir.join(file), b"").unwrap();
            }
            dir
        });
        let (env_b, missing) = (b.as_os_str(), root.join("missing"));
        assert_eq!(lookup(Some(&a), Some(env_b), &c).unwrap(), a);
        assert_eq!(lookup(None, Some(env_b), &c).unwrap(), b);
        assert_eq!(lookup(Some(&missing), Some(env_b), &c).unwrap(), b);
        assert_eq!(lookup(Some(&missing), None, &c).unwrap(), c);
        assert_eq!(lookup(None, Some(OsStr::new("")), &c).unwrap(), c);
        fs::remove_dir_all(&root).unwrap();
    }
}
