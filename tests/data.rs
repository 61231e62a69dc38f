//! Integration tests of the IDX reader and dataset loader (`tch2pc::data`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use flate2::write::GzEncoder;
use flate2::Compression;
use tch::{Device, Kind, Tensor};
use tch2pc::data::{bundled_dir, load_dir, read_idx, IdxArray, Split};
use tch2pc::PcError;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "tch2pc-data-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// IDX bytes with the given type byte, dimensions and data.
fn idx(type_byte: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, type_byte, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Unsigned-byte IDX bytes whose data length matches the dimensions.
fn ubyte(dims: &[u32], data: &[u8]) -> Vec<u8> {
    assert_eq!(dims.iter().product::<u32>() as usize, data.len());
    idx(0x08, dims, data)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Deterministic pseudo-random bytes.
fn bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 24) as u8
        })
        .collect()
}

fn format_message(err: PcError, expected_path: &Path) -> String {
    match err {
        PcError::Format {
            ref path,
            ref message,
        } => {
            assert_eq!(path, expected_path, "error names the wrong file: {err}");
            message.clone()
        }
        other => panic!("expected PcError::Format, got {other:?}"),
    }
}

fn vec_i64(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(t.flatten(0, -1)).unwrap()
}

fn vec_f64(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

#[test]
fn round_trip_raw_and_gzip() {
    let dir = TempDir::new("roundtrip");
    let cases: [&[u32]; 5] = [&[7], &[3, 4, 2], &[2, 28, 28], &[0, 5, 5], &[]];
    for (i, dims) in cases.iter().enumerate() {
        let n = dims.iter().product::<u32>() as usize;
        let data = bytes(n, i as u32);
        let file = ubyte(dims, &data);
        let expected = IdxArray {
            dims: dims.iter().map(|&d| d as usize).collect(),
            data,
        };
        // Compression is detected from the content, whatever the name says.
        for (name, content) in [
            (format!("raw-{i}"), file.clone()),
            (format!("gz-{i}.gz"), gzip(&file)),
            (format!("gz-unnamed-{i}"), gzip(&file)),
            (format!("raw-named-gz-{i}.gz"), file.clone()),
        ] {
            let path = dir.write(&name, &content);
            let got = read_idx(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, expected, "{name}");
        }
    }
    // A gzip file made of several members (as `cat a.gz b.gz` makes) reads as one.
    let file = ubyte(&[4, 3], &bytes(12, 9));
    let mut multi = gzip(&file[..10]);
    multi.extend(gzip(&file[10..]));
    let got = read_idx(dir.write("multi.gz", &multi)).unwrap();
    assert_eq!(got.dims, [4, 3]);
    assert_eq!(got.data, &file[4 + 8..]);
}

/// Writes a small dataset: 6 training and 2 test images of 4x3, mixing raw, gzip
/// and dotted spellings.
fn write_tiny_dataset(dir: &TempDir) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let train_images = bytes(6 * 4 * 3, 1);
    let train_labels = vec![3, 1, 4, 1, 5, 200];
    let test_images = bytes(2 * 4 * 3, 2);
    let test_labels = vec![9, 0];
    dir.write(
        "train-images-idx3-ubyte.gz",
        &gzip(&ubyte(&[6, 4, 3], &train_images)),
    );
    dir.write("train-labels-idx1-ubyte", &ubyte(&[6], &train_labels));
    dir.write("t10k-images.idx3-ubyte", &ubyte(&[2, 4, 3], &test_images));
    dir.write(
        "t10k-labels.idx1-ubyte.gz",
        &gzip(&ubyte(&[2], &test_labels)),
    );
    (train_images, train_labels, test_images, test_labels)
}

#[test]
fn load_dir_on_a_tiny_dataset() {
    let dir = TempDir::new("tiny");
    let (train_images, train_labels, test_images, test_labels) = write_tiny_dataset(&dir);
    for kind in [Kind::Float, Kind::Double] {
        let ds = load_dir(dir.path(), kind, Device::Cpu).unwrap();
        assert_eq!(ds.train.len(), 6);
        assert_eq!(ds.test.len(), 2);
        assert!(!ds.train.is_empty());
        assert_eq!(ds.train.images.size(), [6, 1, 4, 3]);
        assert_eq!(ds.test.images.size(), [2, 1, 4, 3]);
        assert_eq!(ds.train.images.kind(), kind);
        assert_eq!(ds.train.labels.kind(), Kind::Int64);
        assert_eq!(ds.train.labels.size(), [6]);
        // Labels are stored as found, 200 included.
        assert_eq!(
            vec_i64(&ds.train.labels),
            train_labels
                .iter()
                .map(|&l| i64::from(l))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            vec_i64(&ds.test.labels),
            test_labels
                .iter()
                .map(|&l| i64::from(l))
                .collect::<Vec<_>>()
        );
        for (split, raw) in [(&ds.train, &train_images), (&ds.test, &test_images)] {
            let got = vec_f64(&split.images);
            assert_eq!(got.len(), raw.len());
            let tol = if kind == Kind::Float { 1e-7 } else { 1e-15 };
            for (g, &r) in got.iter().zip(raw.iter()) {
                assert!((g - f64::from(r) / 255.0).abs() <= tol, "{g} vs {r}/255");
            }
        }
    }
}

#[test]
fn load_dir_prefers_the_plain_name_and_needs_a_float_kind() {
    let dir = TempDir::new("prefer");
    write_tiny_dataset(&dir);
    // A second, different training labels file under the `.gz` name is ignored: the
    // plain name comes first.
    dir.write(
        "train-labels-idx1-ubyte.gz",
        &gzip(&ubyte(&[6], &[0, 0, 0, 0, 0, 0])),
    );
    let ds = load_dir(dir.path(), Kind::Float, Device::Cpu).unwrap();
    assert_eq!(vec_i64(&ds.train.labels), [3, 1, 4, 1, 5, 200]);

    let err = load_dir(dir.path(), Kind::Int64, Device::Cpu).unwrap_err();
    assert!(matches!(err, PcError::InvalidConfig(_)), "{err:?}");
    assert!(err.to_string().contains("Int64"), "{err}");
}

#[test]
fn missing_files_are_io_errors_naming_them() {
    let dir = TempDir::new("missing");
    let path = dir.path().join("nope-idx1-ubyte");
    match read_idx(&path).unwrap_err() {
        PcError::Io { path: p, source } => {
            assert_eq!(p, path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }

    // A directory that does not exist.
    let nowhere = dir.path().join("no-such-dir");
    let err = load_dir(&nowhere, Kind::Float, Device::Cpu).unwrap_err();
    assert!(
        matches!(&err, PcError::Io { path, .. } if *path == nowhere),
        "{err:?}"
    );

    // A file where a directory is expected.
    let file = dir.write("a-file", b"x");
    let err = load_dir(&file, Kind::Float, Device::Cpu).unwrap_err();
    assert!(
        matches!(&err, PcError::Io { path, .. } if *path == file),
        "{err:?}"
    );
    assert!(err.to_string().contains("not a directory"), "{err}");

    // Two of the four files missing: both are listed.
    write_tiny_dataset(&dir);
    std::fs::remove_file(dir.path().join("train-labels-idx1-ubyte")).unwrap();
    std::fs::remove_file(dir.path().join("t10k-images.idx3-ubyte")).unwrap();
    let err = load_dir(dir.path(), Kind::Float, Device::Cpu).unwrap_err();
    let message = err.to_string();
    match err {
        PcError::Io { path, source } => {
            assert_eq!(path, dir.path().join("train-labels-idx1-ubyte"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(message.contains("train-labels-idx1-ubyte"), "{message}");
    assert!(message.contains("t10k-images-idx3-ubyte"), "{message}");
    assert!(!message.contains("train-images-idx3-ubyte,"), "{message}");
    assert!(!message.contains("t10k-labels-idx1-ubyte,"), "{message}");
}

#[test]
fn bad_magic_is_a_format_error() {
    let dir = TempDir::new("magic");
    for (name, content) in [
        ("text", b"hello, world, not idx".to_vec()),
        ("one", vec![0x01, 0x00, 0x08, 0x01, 0, 0, 0, 1, 7]),
        ("gz", gzip(&[0x00, 0x07, 0x08, 0x01, 0, 0, 0, 1, 7])),
    ] {
        let path = dir.write(name, &content);
        let message = format_message(read_idx(&path).unwrap_err(), &path);
        assert!(message.contains("bad magic number"), "{name}: {message}");
    }
    // Shorter than a header.
    for (name, content) in [("empty", vec![]), ("short", vec![0, 0, 8])] {
        let path = dir.write(name, &content);
        let message = format_message(read_idx(&path).unwrap_err(), &path);
        assert!(message.contains("not an IDX file"), "{name}: {message}");
        assert!(message.contains("4-byte IDX header"), "{name}: {message}");
    }
}

#[test]
fn unsupported_type_byte_is_a_format_error() {
    let dir = TempDir::new("type");
    let path = dir.write("floats", &idx(0x0d, &[2], &[0; 8]));
    let message = format_message(read_idx(&path).unwrap_err(), &path);
    assert!(
        message.contains("unsupported IDX data type 0x0d"),
        "{message}"
    );
    assert!(message.contains("32-bit float"), "{message}");
    assert!(message.contains("0x08 (unsigned byte)"), "{message}");

    let path = dir.write("weird.gz", &gzip(&idx(0x42, &[2], &[0; 2])));
    let message = format_message(read_idx(&path).unwrap_err(), &path);
    assert!(message.contains("0x42"), "{message}");
}

#[test]
fn truncated_data_is_a_format_error_with_both_sizes() {
    let dir = TempDir::new("truncated");
    let content = idx(0x08, &[2, 3, 4], &bytes(20, 3));
    for path in [
        dir.write("raw", &content),
        dir.write("packed.gz", &gzip(&content)),
    ] {
        let message = format_message(read_idx(&path).unwrap_err(), &path);
        assert!(message.contains("truncated data"), "{message}");
        assert!(message.contains("[2, 3, 4]"), "{message}");
        assert!(message.contains("24 bytes"), "{message}");
        assert!(message.contains("found 20 bytes"), "{message}");
    }
    // Truncated inside the dimensions.
    let path = dir.write("header", &[0, 0, 8, 3, 0, 0, 0, 2, 0, 0]);
    let message = format_message(read_idx(&path).unwrap_err(), &path);
    assert!(message.contains("truncated IDX header"), "{message}");
    assert!(message.contains("12 bytes, found 6"), "{message}");
    // A cut-off gzip stream.
    let gz = gzip(&ubyte(&[100], &bytes(100, 4)));
    let path = dir.write("cut.gz", &gz[..gz.len() - 12]);
    let message = format_message(read_idx(&path).unwrap_err(), &path);
    assert!(message.contains("corrupt gzip data"), "{message}");
}

#[test]
fn trailing_bytes_are_a_format_error() {
    let dir = TempDir::new("trailing");
    let content = idx(0x08, &[2, 3, 4], &bytes(27, 5));
    for path in [
        dir.write("raw", &content),
        dir.write("packed.gz", &gzip(&content)),
    ] {
        let message = format_message(read_idx(&path).unwrap_err(), &path);
        assert!(message.contains("trailing bytes"), "{message}");
        assert!(message.contains("24 bytes"), "{message}");
        assert!(message.contains("found 27 bytes"), "{message}");
        assert!(message.contains("3 too many"), "{message}");
    }
}

#[test]
fn wrong_number_of_dimensions_is_a_format_error() {
    let dir = TempDir::new("dims");
    write_tiny_dataset(&dir);
    // A labels file with 3 dimensions.
    let labels = dir.write("train-labels-idx1-ubyte", &ubyte(&[6, 1, 1], &[0; 6]));
    let err = load_dir(dir.path(), Kind::Float, Device::Cpu).unwrap_err();
    let message = format_message(err, &labels);
    assert!(message.contains("needs 1 dimension"), "{message}");
    assert!(
        message.contains("found 3 dimensions [6, 1, 1]"),
        "{message}"
    );

    // An images file with 2 dimensions.
    write_tiny_dataset(&dir);
    let images = dir.write("t10k-images.idx3-ubyte", &ubyte(&[2, 12], &[0; 24]));
    let err = load_dir(dir.path(), Kind::Float, Device::Cpu).unwrap_err();
    let message = format_message(err, &images);
    assert!(message.contains("needs 3 dimensions"), "{message}");
    assert!(message.contains("found 2 dimensions [2, 12]"), "{message}");

    // Test images of another size than the training images.
    write_tiny_dataset(&dir);
    let images = dir.write("t10k-images.idx3-ubyte", &ubyte(&[2, 3, 4], &[0; 24]));
    let err = load_dir(dir.path(), Kind::Float, Device::Cpu).unwrap_err();
    let message = format_message(err, &images);
    assert!(message.contains("rows and columns differ"), "{message}");
}

#[test]
fn image_and_label_counts_must_match() {
    let dir = TempDir::new("counts");
    write_tiny_dataset(&dir);
    let labels = dir.write("train-labels-idx1-ubyte", &ubyte(&[5], &[1; 5]));
    let err = load_dir(dir.path(), Kind::Float, Device::Cpu).unwrap_err();
    let message = format_message(err, &labels);
    assert!(message.contains("5 labels"), "{message}");
    assert!(message.contains("6 images"), "{message}");
    assert!(message.contains("train-images-idx3-ubyte.gz"), "{message}");
}

#[test]
fn bundled_mnist_subset() {
    let ds = load_dir(bundled_dir(), Kind::Float, Device::Cpu).unwrap();
    let (train, test) = (&ds.train, &ds.test);
    assert_eq!((train.len(), test.len()), (8000, 2000));
    assert_eq!(train.images.size(), [8000, 1, 28, 28]);
    assert_eq!(test.images.size(), [2000, 1, 28, 28]);
    assert_eq!(train.labels.size(), [8000]);
    assert_eq!(test.labels.size(), [2000]);
    for split in [train, test] {
        assert_eq!(split.images.min().double_value(&[]), 0.0);
        assert_eq!(split.images.max().double_value(&[]), 1.0);
    }

    // Reference values from an independent reader (Python's gzip + struct).
    let train_first: [i64; 20] = [9, 3, 7, 0, 9, 7, 7, 9, 6, 5, 4, 5, 4, 9, 4, 2, 7, 0, 4, 7];
    let test_first: [i64; 20] = [0, 2, 2, 8, 4, 3, 1, 0, 8, 3, 5, 7, 9, 0, 8, 4, 4, 2, 2, 3];
    assert_eq!(vec_i64(&train.labels.narrow(0, 0, 20)), train_first);
    assert_eq!(vec_i64(&test.labels.narrow(0, 0, 20)), test_first);
    let train_counts = [792, 897, 786, 846, 799, 673, 805, 860, 761, 781];
    let test_counts = [209, 230, 205, 186, 181, 190, 209, 210, 183, 197];
    assert_eq!(
        vec_i64(&train.labels.bincount::<Tensor>(None, 10)),
        train_counts
    );
    assert_eq!(
        vec_i64(&test.labels.bincount::<Tensor>(None, 10)),
        test_counts
    );
    // Class counts over all 10,000 as the bundled README states them.
    let all: Vec<i64> = train_counts
        .iter()
        .zip(test_counts.iter())
        .map(|(a, b)| a + b)
        .collect();
    assert_eq!(all, [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);

    // Pixels are grey levels / 255: check the first images against the raw bytes.
    for (split, sum, centre) in [(train, 28397.0, 253.0), (test, 50503.0, 174.0)] {
        let grey = split.images.get(0).to_kind(Kind::Double) * 255.0;
        let rounded = grey.round();
        let off = (&grey - &rounded).abs().max().double_value(&[]);
        assert!(
            off < 1e-4,
            "pixels are not multiples of 1/255 (off by {off})"
        );
        assert_eq!(rounded.sum(Kind::Double).double_value(&[]), sum);
        assert_eq!(rounded.double_value(&[0, 14, 14]), centre);
    }
}

/// A split whose example `i` has image value `i` and label `i`.
fn counting_split(n: i64) -> Split {
    let labels = Tensor::arange(n, (Kind::Int64, Device::Cpu));
    let images = labels.to_kind(Kind::Float).reshape([n, 1, 1, 1]);
    Split { images, labels }
}

/// The label order that `batches` yields, with each batch's size.
fn visit(split: &Split, batch_size: usize, seed: Option<u64>) -> (Vec<i64>, Vec<i64>) {
    let mut order = Vec::new();
    let mut sizes = Vec::new();
    for batch in split.batches(batch_size, seed).unwrap() {
        let (x, y) = batch.unwrap();
        assert_eq!(x.size()[0], y.size()[0]);
        assert_eq!(x.size()[1..], [1, 1, 1]);
        // Images and labels stay paired.
        assert_eq!(
            vec_f64(&x),
            vec_i64(&y).iter().map(|&v| v as f64).collect::<Vec<_>>()
        );
        sizes.push(y.size()[0]);
        order.extend(vec_i64(&y));
    }
    (order, sizes)
}

#[test]
fn batches_cover_every_example_once_in_a_seeded_order() {
    let split = counting_split(103);
    let identity: Vec<i64> = (0..103).collect();

    let (order, sizes) = visit(&split, 10, None);
    assert_eq!(order, identity);
    assert_eq!(sizes, [10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 3]);
    assert_eq!(split.batches(10, None).unwrap().len(), 11);
    assert_eq!(split.batches(200, None).unwrap().len(), 1);
    assert_eq!(split.batches(1, Some(0)).unwrap().len(), 103);

    let (a, sizes) = visit(&split, 10, Some(1));
    assert_eq!(sizes.iter().sum::<i64>(), 103);
    assert_eq!(*sizes.last().unwrap(), 3);
    assert_ne!(a, identity);
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, identity);
    // Deterministic: the same seed gives the same order, whatever the batch size.
    assert_eq!(visit(&split, 10, Some(1)).0, a);
    assert_eq!(visit(&split, 7, Some(1)).0, a);
    assert_ne!(visit(&split, 10, Some(2)).0, a);

    // The iterator counts down and stays done.
    let mut it = split.batches(50, Some(3)).unwrap();
    assert_eq!(it.len(), 3);
    let mut sizes = Vec::new();
    for left in [2, 1, 0] {
        let (x, y) = it.next().unwrap().unwrap();
        assert_eq!(x.size()[0], y.size()[0]);
        sizes.push(y.size()[0]);
        assert_eq!(it.len(), left);
    }
    assert_eq!(sizes, [50, 50, 3]);
    assert!(it.next().is_none());
    assert!(it.next().is_none());

    // Empty split: no batches.
    let empty = counting_split(0);
    assert!(empty.is_empty());
    assert_eq!(empty.batches(4, Some(0)).unwrap().count(), 0);
}

#[test]
fn batches_reject_bad_arguments() {
    let split = counting_split(10);
    let err = split.batches(0, None).unwrap_err();
    assert!(matches!(err, PcError::InvalidConfig(_)), "{err:?}");

    let bad = Split {
        images: Tensor::zeros([10, 1, 2, 2], (Kind::Float, Device::Cpu)),
        labels: Tensor::zeros([9], (Kind::Int64, Device::Cpu)),
    };
    let err = bad.batches(4, Some(0)).unwrap_err();
    assert!(
        matches!(&err, PcError::ShapeMismatch { what, found, .. } if what == "labels" && *found == [9]),
        "{err:?}"
    );
}

#[test]
fn fashion_mnist_from_the_debian_package() {
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    if !dir.is_dir() {
        eprintln!(
            "skipped: {} not installed (apt-get install dataset-fashion-mnist)",
            dir.display()
        );
        return;
    }
    let ds = load_dir(dir, Kind::Float, Device::Cpu).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (60_000, 10_000));
    assert_eq!(ds.train.images.size(), [60_000, 1, 28, 28]);
    assert_eq!(ds.test.images.size(), [10_000, 1, 28, 28]);
    // Fashion-MNIST is balanced: 6,000 and 1,000 of each of 10 classes.
    assert_eq!(
        vec_i64(&ds.train.labels.bincount::<Tensor>(None, 10)),
        [6000; 10]
    );
    assert_eq!(
        vec_i64(&ds.test.labels.bincount::<Tensor>(None, 10)),
        [1000; 10]
    );
    assert_eq!(ds.train.images.max().double_value(&[]), 1.0);
    assert_eq!(ds.train.images.min().double_value(&[]), 0.0);
}
