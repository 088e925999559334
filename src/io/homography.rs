//! Ground-truth homographies of real image pairs, and the folders that hold them.
//!
//! | dataset | files | stored convention |
//! |---|---|---|
//! | CMP "homogr" (Lebeda, Matas, Chum, BMVC 2012) | `<name>A.*`, `<name>B.*`, `<name>_model.txt` (3 rows of 3 numbers), `<name>_vpts.mat` | maps **B to A**, **1-based** pixels (MATLAB) |
//! | Oxford affine (Mikolajczyk et al., IJCV 2005) | `img1.*` .. `img6.*` (or `<prefix>1.*`, `<prefix>N.*`), `H1toNp` (3 rows of 3 numbers) or `H1toNp.xml` (OpenCV FileStorage) | maps **1 to N**, **0-based** pixels |
//!
//! Every reader returns the one canonical form: a [`Homography`] mapping image A (the CMP `A`, the Oxford
//! image 1) to image B (the CMP `B`, the Oxford image N), in 0-based pixel coordinates with pixel centres at
//! integers. For CMP that is `from_one_based(model)^-1`. The CMP convention was checked on the data itself:
//! the hand-marked points of `<name>_vpts.mat` ([`read_cmp_validation_points`]) agree with the models this
//! way round (`tests/matching_data.rs`).
//!
//! [`find_homography_pairs`] walks a folder tree for both layouts; a ground-truth file whose images are
//! missing (such as `cmp_homogr/graf_model.txt`, whose images live under `oxford_affine/graf`) is listed as
//! skipped with the reason, not as an error.

use std::path::{Path, PathBuf};

use super::mat5::{parse_mat5, MatValue};
use super::read_limited;
use crate::data::correspondence::PointPair;
use crate::data::homography::Homography;
use crate::{Error, Result};

/// Largest homography text or XML file read, in bytes (the real ones are under 400 bytes).
pub const MAX_HOMOGRAPHY_FILE_BYTES: u64 = 64 << 10;

/// Largest MAT-file read, in bytes (the CMP validation files are about 600 bytes).
pub const MAX_MAT_FILE_BYTES: u64 = 16 << 20;

/// Deepest folder level [`find_homography_pairs`] descends to below its root.
pub const MAX_WALK_DEPTH: usize = 6;

/// Image extensions the walker recognises (case-insensitive).
const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "ppm", "pgm", "bmp"];

fn text(bytes: &[u8], path: &Path) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::format(path, "not UTF-8 text"))
}

fn matrix(values: &[f64], path: &Path) -> Result<Homography> {
    let m = [[values[0], values[1], values[2]], [values[3], values[4], values[5]], [values[6], values[7], values[8]]];
    Homography::new(m).map_err(|e| Error::format(path, format!("not a usable homography: {e}")))
}

/// Parses 3 non-empty lines of 3 whitespace-separated numbers (the CMP `_model.txt` and the Oxford `H1toNp`
/// text format) into the matrix as written, unnormalised and without a convention applied.
pub fn parse_matrix_text(text: &str, path: &Path) -> Result<[[f64; 3]; 3]> {
    let shape_error = || Error::format(path, "expected 3 lines of 3 numbers (a 3x3 homography, row by row)");
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.len() != 3 {
        return Err(shape_error());
    }
    let mut m = [[0.0; 3]; 3];
    for (r, line) in lines.iter().enumerate() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.len() != 3 {
            return Err(shape_error());
        }
        for (c, token) in tokens.iter().enumerate() {
            m[r][c] = token.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| {
                Error::format(path, format!("row {}, column {}: `{token}` is not a finite number", r + 1, c + 1))
            })?;
        }
    }
    Ok(m)
}

/// The inner text of the first `<tag>...</tag>` in `xml` at or after `from`.
fn xml_element<'a>(xml: &'a str, tag: &str, from: usize) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.get(from..)?.find(&open)? + from + open.len();
    let end = xml.get(start..)?.find(&close)? + start;
    xml.get(start..end)
}

/// Parses the first `opencv-matrix` of an OpenCV FileStorage XML file (`<rows>3</rows> <cols>3</cols>
/// <dt>d</dt> <data>9 numbers</data>`), as written.
pub fn parse_opencv_xml_matrix(xml: &str, path: &Path) -> Result<[[f64; 3]; 3]> {
    let at = xml.find("type_id=\"opencv-matrix\"").ok_or_else(|| {
        Error::format(path, "no element with type_id=\"opencv-matrix\": not an OpenCV FileStorage matrix")
    })?;
    let field = |tag: &str| {
        xml_element(xml, tag, at)
            .map(str::trim)
            .ok_or_else(|| Error::format(path, format!("the matrix has no <{tag}>")))
    };
    let (rows, cols, dt) = (field("rows")?, field("cols")?, field("dt")?);
    if rows != "3" || cols != "3" {
        return Err(Error::format(path, format!("the matrix is {rows}x{cols}, a homography is 3x3")));
    }
    if dt != "d" && dt != "f" {
        return Err(Error::format(path, format!("element type `{dt}`: expected `d` (double) or `f` (float)")));
    }
    let values: Vec<f64> = field("data")?
        .split_whitespace()
        .map(|t| t.parse::<f64>().ok().filter(|v| v.is_finite()))
        .collect::<Option<_>>()
        .ok_or_else(|| Error::format(path, "<data> holds something that is not a finite number"))?;
    if values.len() != 9 {
        return Err(Error::format(path, format!("<data> holds {} numbers, a 3x3 matrix needs 9", values.len())));
    }
    Ok([[values[0], values[1], values[2]], [values[3], values[4], values[5]], [values[6], values[7], values[8]]])
}

/// The canonical homography (A to B, 0-based) for a CMP model as stored (B to A, 1-based).
pub fn cmp_model_to_a_to_b(stored_b_to_a_one_based: &Homography) -> Homography {
    Homography::from_one_based(stored_b_to_a_one_based).inverse()
}

/// Reads a CMP `<name>_model.txt` and returns the homography mapping image A to image B in 0-based pixels
/// (the file stores B to A in 1-based pixels; see the module documentation).
pub fn read_cmp_model(path: impl AsRef<Path>) -> Result<Homography> {
    let path = path.as_ref();
    let stored = parse_matrix_text(&text(&read_limited(path, MAX_HOMOGRAPHY_FILE_BYTES)?, path)?, path)?;
    let stored = matrix(&stored.concat(), path)?;
    Ok(cmp_model_to_a_to_b(&stored))
}

/// Reads an Oxford `H1toNp` (plain text) or `H1toNp.xml` (OpenCV FileStorage): the homography mapping image
/// 1 to image N in 0-based pixels, which is already the canonical form.
pub fn read_oxford_homography(path: impl AsRef<Path>) -> Result<Homography> {
    let path = path.as_ref();
    let text = text(&read_limited(path, MAX_HOMOGRAPHY_FILE_BYTES)?, path)?;
    let m = if text.trim_start().starts_with('<') {
        parse_opencv_xml_matrix(&text, path)?
    } else {
        parse_matrix_text(&text, path)?
    };
    matrix(&m.concat(), path)
}

/// Reads the hand-marked correspondences of a CMP `<name>_vpts.mat`: the struct `validation` whose field
/// `pts` is a 6 x N matrix of homogeneous points `[xA; yA; wA; xB; yB; wB]` in 1-based pixels, returned as
/// points of A and B in 0-based pixels.
pub fn read_cmp_validation_points(path: impl AsRef<Path>) -> Result<Vec<PointPair>> {
    let path = path.as_ref();
    let variables = parse_mat5(&read_limited(path, MAX_MAT_FILE_BYTES)?, path)?;
    let pts = variables
        .iter()
        .find(|v| v.name == "validation")
        .and_then(|v| v.field("pts"))
        .ok_or_else(|| Error::format(path, "no variable `validation` with a field `pts`"))?;
    let MatValue::Numeric(values) = &pts.value else {
        return Err(Error::format(path, "`validation.pts` is not a real numeric matrix"));
    };
    if pts.dims.len() != 2 || pts.dims[0] != 6 {
        return Err(Error::format(path, format!("`validation.pts` is {:?}, expected 6 x N", pts.dims)));
    }
    values
        .chunks_exact(6)
        .enumerate()
        .map(|(i, c)| {
            let dehomogenise = |x: f64, y: f64, w: f64| {
                let p = (x / w - 1.0, y / w - 1.0);
                (p.0.is_finite() && p.1.is_finite()).then_some(p)
            };
            match (dehomogenise(c[0], c[1], c[2]), dehomogenise(c[3], c[4], c[5])) {
                (Some(a), Some(b)) => Ok(PointPair { a, b }),
                _ => Err(Error::format(
                    path,
                    format!("point {} of `validation.pts` is at infinity or not finite", i + 1),
                )),
            }
        })
        .collect()
}

/// An evaluation pair: two images and the ground truth mapping the first onto the second.
#[derive(Clone, Debug, PartialEq)]
pub struct HomographyPair {
    /// `cmp_homogr` or `oxford`.
    pub dataset: String,
    /// The CMP name (`adam`), or `<sequence>_1toN` for Oxford (`graf_1to3`).
    pub name: String,
    pub image_a: PathBuf,
    pub image_b: PathBuf,
    /// The file the homography was read from.
    pub ground_truth: PathBuf,
    /// Image A to image B, 0-based pixels.
    pub a_to_b: Homography,
}

/// A ground-truth file the walker found but could not pair with images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedPair {
    pub ground_truth: PathBuf,
    pub reason: String,
}

/// What [`find_homography_pairs`] found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HomographyPairs {
    pub pairs: Vec<HomographyPair>,
    pub skipped: Vec<SkippedPair>,
}

fn is_image(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(_, ext)| IMAGE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// The regular files (symbolic links followed) and folders directly in `dir`, sorted by name.
fn list(dir: &Path) -> Result<(Vec<String>, Vec<PathBuf>)> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        match std::fs::metadata(entry.path()) {
            Ok(m) if m.is_file() => files.push(name),
            Ok(m) if m.is_dir() => dirs.push(entry.path()),
            _ => {}
        }
    }
    files.sort();
    dirs.sort();
    Ok((files, dirs))
}

/// The single image in `files` whose stem is `stem`; `Err(reason)` when there is none or several.
fn single_image(files: &[String], stem: &str) -> std::result::Result<String, String> {
    let found: Vec<&String> =
        files.iter().filter(|n| is_image(n) && n.rsplit_once('.').is_some_and(|(s, _)| s == stem)).collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!("no image {stem}.* ({}) beside it", IMAGE_EXTENSIONS.join(", "))),
        many => Err(format!(
            "several images named {stem}.*: {}",
            many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// `N` for an Oxford ground-truth name `H1toNp` or `H1toNp.xml` (N >= 2).
fn oxford_index(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(".xml").unwrap_or(name);
    let n: u32 = stem.strip_prefix("H1to")?.strip_suffix('p')?.parse().ok()?;
    (n >= 2).then_some(n)
}

fn scan(dir: &Path, out: &mut HomographyPairs) -> Result<()> {
    let (files, _) = list(dir)?;
    let leaf = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut skip = |gt: &Path, reason: String| out.skipped.push(SkippedPair { ground_truth: gt.to_path_buf(), reason });
    let mut found = Vec::new();
    for file in &files {
        let gt = dir.join(file);
        if let Some(name) = file.strip_suffix("_model.txt") {
            match (single_image(&files, &format!("{name}A")), single_image(&files, &format!("{name}B"))) {
                (Ok(a), Ok(b)) => found.push(HomographyPair {
                    dataset: "cmp_homogr".into(),
                    name: name.to_string(),
                    image_a: dir.join(a),
                    image_b: dir.join(b),
                    a_to_b: read_cmp_model(&gt)?,
                    ground_truth: gt,
                }),
                (Err(reason), _) | (_, Err(reason)) => skip(&gt, reason),
            }
        } else if let Some(n) = oxford_index(file) {
            if file.ends_with(".xml") || !files.contains(&format!("{file}.xml")) {
                // Image 1 and image N share a prefix: `img1`/`img3`, `graf1`/`graf3`.
                let prefixes: Vec<&str> = files
                    .iter()
                    .filter(|f| is_image(f))
                    .filter_map(|f| f.rsplit_once('.').and_then(|(stem, _)| stem.strip_suffix('1')))
                    .filter(|prefix| !prefix.ends_with(|c: char| c.is_ascii_digit()))
                    .filter(|prefix| single_image(&files, &format!("{prefix}{n}")).is_ok())
                    .collect();
                match prefixes.as_slice() {
                    [prefix] => {
                        let sequence = if prefix.is_empty() || *prefix == "img" { leaf.as_str() } else { prefix };
                        found.push(HomographyPair {
                            dataset: "oxford".into(),
                            name: format!("{sequence}_1to{n}"),
                            image_a: dir.join(single_image(&files, &format!("{prefix}1")).unwrap_or_default()),
                            image_b: dir.join(single_image(&files, &format!("{prefix}{n}")).unwrap_or_default()),
                            a_to_b: read_oxford_homography(&gt)?,
                            ground_truth: gt,
                        })
                    }
                    [] => skip(&gt, format!("no pair of images <prefix>1.* and <prefix>{n}.* beside it")),
                    many => {
                        skip(&gt, format!("ambiguous: images of several sequences ({}) beside it", many.join(", ")))
                    }
                }
            } else {
                skip(&gt, format!("{file}.xml beside it holds the same homography and is used instead"));
            }
        }
    }
    out.pairs.extend(found);
    Ok(())
}

fn walk(dir: &Path, depth: usize, out: &mut HomographyPairs) -> Result<()> {
    scan(dir, out)?;
    if depth < MAX_WALK_DEPTH {
        for sub in list(dir)?.1 {
            walk(&sub, depth + 1, out)?;
        }
    }
    Ok(())
}

/// Finds every homography evaluation pair in `root` and its folders (up to [`MAX_WALK_DEPTH`] levels down),
/// in the CMP and Oxford layouts of the module documentation, sorted by dataset then name. Ground-truth files
/// without their images are listed in [`HomographyPairs::skipped`] with the reason. Fails when `root` is not
/// a readable folder or a ground-truth file beside its images cannot be read (a corrupt file is reported,
/// not silently dropped).
pub fn find_homography_pairs(root: impl AsRef<Path>) -> Result<HomographyPairs> {
    let root = root.as_ref();
    let meta = std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
    if !meta.is_dir() {
        return Err(Error::format(
            root,
            "not a folder: give a folder laid out like ../shared/data/cmp_homogr or ../shared/data/oxford_affine/graf",
        ));
    }
    let mut out = HomographyPairs::default();
    walk(root, 0, &mut out)?;
    out.pairs.sort_by(|a, b| (&a.dataset, &a.name, &a.ground_truth).cmp(&(&b.dataset, &b.name, &b.ground_truth)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oxford_names() {
        assert_eq!(oxford_index("H1to3p"), Some(3));
        assert_eq!(oxford_index("H1to3p.xml"), Some(3));
        assert_eq!(oxford_index("H1to1p"), None);
        assert_eq!(oxford_index("H1top"), None);
        assert_eq!(oxford_index("H2to3p"), None);
    }

    #[test]
    fn matrix_text_shapes() {
        let p = Path::new("m.txt");
        assert_eq!(parse_matrix_text("1 0 0\n0 1 0\n0 0 1\n", p).unwrap()[1][1], 1.0);
        assert!(parse_matrix_text("1 0 0\n0 1 0\n", p).is_err());
        assert!(parse_matrix_text("1 0 0 0\n0 1 0\n0 0 1", p).is_err());
        assert!(parse_matrix_text("1 0 0\n0 x 0\n0 0 1", p).is_err());
        assert!(parse_matrix_text("1 0 0\n0 inf 0\n0 0 1", p).is_err());
    }
}
