//! What an uploaded file is, judged by its bytes alone: JPEG, PNG or WebP, with the width and
//! height from its header. The declared content type and the file name are never trusted.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Jpeg,
    Png,
    Webp,
}

impl ImageType {
    pub fn content_type(self) -> &'static str {
        match self {
            ImageType::Jpeg => "image/jpeg",
            ImageType::Png => "image/png",
            ImageType::Webp => "image/webp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub kind: ImageType,
    pub width: u32,
    pub height: u32,
}

/// The image without the metadata a camera or an editor leaves in it: EXIF (with GPS
/// position, camera serial, time), XMP, IPTC, comments and text chunks. Pixels, colour
/// profiles and whatever decoding needs stay; nothing is decoded or re-encoded. `None` when
/// the container does not read. (The EXIF orientation goes too: images show as stored.)
pub fn strip_metadata(bytes: Vec<u8>, kind: ImageType) -> Option<Vec<u8>> {
    use img_parts::{ImageEXIF as _, jpeg, png, webp};
    let bytes = img_parts::Bytes::from(bytes);
    let stripped = match kind {
        ImageType::Jpeg => {
            let mut image = jpeg::Jpeg::from_bytes(bytes).ok()?;
            // APP1: EXIF and XMP; APP13: IPTC/Photoshop; COM: comments. APP0 (JFIF), APP2 (ICC)
            // and APP14 (Adobe colour transform) are needed to show the image right.
            image.segments_mut().retain(|segment| {
                !matches!(
                    segment.marker(),
                    jpeg::markers::APP1 | jpeg::markers::APP13 | jpeg::markers::COM
                )
            });
            image.encoder().bytes()
        }
        ImageType::Png => {
            let mut image = png::Png::from_bytes(bytes).ok()?;
            image.chunks_mut().retain(|chunk| {
                !matches!(
                    &chunk.kind(),
                    b"eXIf" | b"tEXt" | b"zTXt" | b"iTXt" | b"tIME"
                )
            });
            image.encoder().bytes()
        }
        ImageType::Webp => {
            let mut image = webp::WebP::from_bytes(bytes).ok()?;
            image.remove_chunks_by_id(webp::CHUNK_XMP);
            // Also rewrites the extended header's flags to what is left.
            image.set_exif(None);
            image.encoder().bytes()
        }
    };
    Some(stripped.to_vec())
}

/// The type by magic number, if the bytes start like one of the three.
pub fn sniff(bytes: &[u8]) -> Option<ImageType> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageType::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageType::Png)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageType::Webp)
    } else {
        None
    }
}

/// The image's type and dimensions, if it is a JPEG, PNG or WebP whose header reads.
pub fn inspect(bytes: &[u8]) -> Option<ImageInfo> {
    let kind = sniff(bytes)?;
    let (width, height) = match kind {
        ImageType::Png => png_size(bytes)?,
        ImageType::Jpeg => jpeg_size(bytes)?,
        ImageType::Webp => webp_size(bytes)?,
    };
    (width > 0 && height > 0).then_some(ImageInfo {
        kind,
        width,
        height,
    })
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_be_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_le_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 3)?;
    Some(u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16)
}

/// PNG: the first chunk is IHDR, width and height big-endian.
fn png_size(b: &[u8]) -> Option<(u32, u32)> {
    (b.get(12..16)? == b"IHDR").then_some(())?;
    Some((be32(b, 16)?, be32(b, 20)?))
}

/// JPEG: walk the segments to the first start-of-frame marker.
fn jpeg_size(b: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    loop {
        while *b.get(at)? != 0xFF {
            at += 1;
        }
        while *b.get(at)? == 0xFF {
            at += 1;
        }
        let marker = *b.get(at)?;
        at += 1;
        match marker {
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => continue,
            0xD9 | 0xDA => return None, // end of image or scan before any frame
            // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                return Some((be16(b, at + 5)?, be16(b, at + 3)?));
            }
            _ => at += usize::try_from(be16(b, at)?).ok()?,
        }
    }
}

/// WebP: lossy (`VP8 `), lossless (`VP8L`) or extended (`VP8X`).
fn webp_size(b: &[u8]) -> Option<(u32, u32)> {
    match b.get(12..16)? {
        b"VP8 " => {
            (b.get(23..26)? == [0x9D, 0x01, 0x2A]).then_some(())?;
            Some((le16(b, 26)? & 0x3FFF, le16(b, 28)? & 0x3FFF))
        }
        b"VP8L" => {
            (*b.get(20)? == 0x2F).then_some(())?;
            let bits = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?);
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        b"VP8X" => Some((le24(b, 24)? + 1, le24(b, 27)? + 1)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend(width.to_be_bytes());
        b.extend(height.to_be_bytes());
        b.extend([8, 2, 0, 0, 0]);
        b
    }

    #[test]
    fn a_png_header_gives_its_size() {
        let info = inspect(&png(640, 480)).unwrap();
        assert_eq!(
            info,
            ImageInfo {
                kind: ImageType::Png,
                width: 640,
                height: 480
            }
        );
    }

    #[test]
    fn a_jpeg_frame_after_other_segments_gives_its_size() {
        let mut b = vec![0xFF, 0xD8];
        b.extend([0xFF, 0xE0, 0x00, 0x10]); // APP0, 16 bytes
        b.extend([0; 14]);
        b.extend([0xFF, 0xC4, 0x00, 0x04, 0, 0]); // DHT
        b.extend([0xFF, 0xC2, 0x00, 0x11, 0x08, 0x01, 0xE0, 0x02, 0x80]); // SOF2 480x640
        b.extend([0; 12]);
        assert_eq!(
            inspect(&b),
            Some(ImageInfo {
                kind: ImageType::Jpeg,
                width: 640,
                height: 480
            })
        );
    }

    #[test]
    fn webp_headers_give_their_size() {
        let mut lossless = b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f".to_vec();
        // 100 x 50: (w-1) | (h-1) << 14
        lossless.extend((99_u32 | 49 << 14).to_le_bytes());
        assert_eq!(
            inspect(&lossless).map(|i| (i.width, i.height)),
            Some((100, 50))
        );
        let mut extended = b"RIFF\0\0\0\0WEBPVP8X\0\0\0\0\0\0\0\0".to_vec();
        extended.extend([0x1F, 0x03, 0x00, 0xDF, 0x01, 0x00]); // 800 x 480
        assert_eq!(
            inspect(&extended).map(|i| (i.width, i.height)),
            Some((800, 480))
        );
    }

    const FIXTURES: [(&[u8], ImageType); 3] = [
        (
            include_bytes!("../../tests/fixtures/camera.jpg"),
            ImageType::Jpeg,
        ),
        (
            include_bytes!("../../tests/fixtures/camera.png"),
            ImageType::Png,
        ),
        (
            include_bytes!("../../tests/fixtures/camera.webp"),
            ImageType::Webp,
        ),
    ];

    #[test]
    fn an_image_without_metadata_comes_back_byte_identical() {
        for (bytes, kind) in FIXTURES {
            let stripped = strip_metadata(bytes.to_vec(), kind).unwrap();
            assert_eq!(stripped, bytes, "{kind:?}");
        }
    }

    #[test]
    fn exif_and_text_metadata_are_removed_and_the_image_still_reads() {
        use img_parts::{ImageEXIF as _, jpeg, png, webp};
        let gps = img_parts::Bytes::from_static(b"MM\0*GPSLatitude 48.8584 N");
        for (bytes, kind) in FIXTURES {
            let tagged: Vec<u8> = match kind {
                ImageType::Jpeg => {
                    let mut image = jpeg::Jpeg::from_bytes(bytes.to_vec().into()).unwrap();
                    image.set_exif(Some(gps.clone()));
                    image.segments_mut().insert(
                        1,
                        jpeg::JpegSegment::new_with_contents(
                            jpeg::markers::COM,
                            img_parts::Bytes::from_static(b"GPSLatitude in a comment"),
                        ),
                    );
                    image.encoder().bytes().to_vec()
                }
                ImageType::Png => {
                    let mut image = png::Png::from_bytes(bytes.to_vec().into()).unwrap();
                    image.set_exif(Some(gps.clone()));
                    let text = png::PngChunk::new(
                        *b"tEXt",
                        img_parts::Bytes::from_static(b"Comment\0GPSLatitude"),
                    );
                    image.chunks_mut().insert(1, text);
                    image.encoder().bytes().to_vec()
                }
                ImageType::Webp => {
                    let mut image = webp::WebP::from_bytes(bytes.to_vec().into()).unwrap();
                    image.set_exif(Some(gps.clone()));
                    image.encoder().bytes().to_vec()
                }
            };
            let needle = b"GPSLatitude";
            assert!(tagged.windows(needle.len()).any(|w| w == needle));
            let stripped = strip_metadata(tagged, kind).unwrap();
            assert!(
                !stripped.windows(needle.len()).any(|w| w == needle),
                "{kind:?} still carries its metadata"
            );
            assert_eq!(inspect(&stripped), inspect(bytes), "{kind:?}");
        }
    }

    #[test]
    fn bytes_after_the_end_of_a_png_do_not_make_it_unreadable() {
        let mut padded = FIXTURES[1].0.to_vec();
        padded.resize(padded.len() + 1000, 0);
        assert!(strip_metadata(padded, ImageType::Png).is_some());
    }

    #[test]
    fn text_or_a_truncated_header_is_not_an_image() {
        assert_eq!(inspect(b"hello, this is text named x.png"), None);
        assert_eq!(inspect(&png(640, 480)[..18]), None);
        assert_eq!(inspect(&[0xFF, 0xD8, 0xFF, 0xE0]), None);
        assert_eq!(inspect(&png(0, 10)), None);
    }
}
