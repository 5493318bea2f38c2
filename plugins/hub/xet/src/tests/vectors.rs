//! Expected values from an independent implementation, produced by
//! `tests/vectors.py` (the test server's Python Xet module for hashes, a plain
//! Python gear CDC for boundaries, each file hash confirmed by the real
//! hf_xet 1.8 `hash_files`; the 70 MiB input's file hash comes from hf_xet
//! alone). Re-run it and paste its output below the marker to update.
//! The inputs are generated identically on both sides by [`splitmix_bytes`]
//! and [`text_like`].

/// `n` bytes: successive splitmix64 outputs, each written little-endian.
pub fn splitmix_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 8);
    let mut state = seed;
    while out.len() < n {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Low-entropy bytes over a 6-letter alphabet (compressible).
pub fn text_like(seed: u64, n: usize) -> Vec<u8> {
    splitmix_bytes(seed, n)
        .into_iter()
        .map(|x| b"abcd \n"[x as usize % 6])
        .collect()
}

pub fn random_100() -> Vec<u8> {
    splitmix_bytes(1, 100)
}

pub fn random_3mib() -> Vec<u8> {
    splitmix_bytes(2, 3 << 20)
}

pub fn random_70mib() -> Vec<u8> {
    splitmix_bytes(11, 70 << 20)
}

pub fn text_1mib() -> Vec<u8> {
    text_like(3, 1 << 20)
}

// ---- output of tests/vectors.py below ----
// RANDOM_100: 100 bytes, 1 chunks; file hash confirmed by hf_xet.hash_files
pub const RANDOM_100_SIZES: &[u64] = &[100];
pub const RANDOM_100_CHUNKS: &[&str] =
    &["eeb11364ce5b06a6fb27f0b538a2237ae8b3f205ae9169ed31bc374c4e66ade2"];
pub const RANDOM_100_XORB: &str =
    "eeb11364ce5b06a6fb27f0b538a2237ae8b3f205ae9169ed31bc374c4e66ade2";
pub const RANDOM_100_FILE: &str =
    "39464392d37c4c266a93d0e35d0c70bfd962c13009223eaa1b613793538d0f94";
pub const RANDOM_100_VERIFY: &str =
    "52fba7c206c98785809ff6e24bd4e74802e6656b3c7778b4c41a30c23113b5d5";
// RANDOM_3MIB: 3145728 bytes, 49 chunks; file hash confirmed by hf_xet.hash_files
pub const RANDOM_3MIB_SIZES: &[u64] = &[
    27337, 9821, 91972, 17654, 131072, 131072, 38411, 56012, 53134, 29358, 12657, 13694, 96303,
    116130, 15221, 35882, 46392, 131072, 40119, 20290, 15042, 15430, 41078, 114917, 131072, 67235,
    131072, 13977, 13042, 131072, 68989, 112574, 40522, 59117, 131072, 131072, 41202, 35994,
    118336, 77257, 40742, 131072, 34345, 76196, 85890, 36952, 113231, 12412, 11213,
];
pub const RANDOM_3MIB_CHUNKS: &[&str] = &[
    "81e1f6bfebb297c8a2336b0d9f9f8ba8078c2be27510f77e20ac68a25b8201ba",
    "2a0a44cda4c0c4d049f4ef73300483165fd5af33cb52d83fa1800146e306b480",
    "41b8d66ab2b24f491da8f0ae30b12e365bf0e3740fbf02be66a32c91241d6bc1",
    "48e2d0565534efb5e0309371c7aaf56f0df793d7c11b8ee804b2ce96e63afe11",
    "de8afe22a74361f52e0c5cfa1d1019e49a38e3609f3c1d0c1bde4c4e30cf9efa",
    "f9b7705059365a00c4bd68a481c06fa71d10702ad02d1791dd2542b205382450",
    "102f00bfdd89c63a22ffa550d7cabcc82dc999dc506702facfba35bba5749519",
    "8e2d7d3b3b4e95fe1cc0d835137eaf7e9de14f4e4945c51617cf36d5e2ff467a",
    "183b674622653a0f52b7ae51108267160089be70d9ef5eac49f00b70760651f3",
    "c2b4cada66633613565d80b9cf9a89bb39d913832c0a1e79cd7c264bb0ba0ef3",
    "c9143598099a316b0849c12d9e0207d63a3fe8f1947f58b78d2ff69f425c7ee0",
    "86e00d35b67cde86a91d6f21b1ac4ab28f7e59f92d8551ec2865e58a5b27ea2f",
    "16b2929773e7aa35a6423ebf6d236b028f8307db8f99481101723837d1bcfa7e",
    "51acdfc61cef1f0e7d7820dafa24214fd1e8486e11c90a1621b6da8c06fb5631",
    "53aa801fe24dbd341703ef2a3b548044e3dfd783b16a35896d7b99bbbd9c89fe",
    "0b647835726807b9fc0bace5061d93827602f1df53dc8a1aad743e6638283305",
    "810d70c2abee9d5e591545dc28a4c8a4dd24dd8f5628be517d321238880009f8",
    "dafa2db6aeb2cf5216a364c41a422b03697e9f86b6ff6e7a7a3dcf01acf96d56",
    "92885eb4ead1a73def9e58051d3a9478f1f8db4abc7ddca098a6e4ef54e84f75",
    "5687bd8ea1298481c9aa92ebb3741e521e639150bb3c3b1e27258e1f83078952",
    "6369c84e56ff92ff35b7ea3441e1e47486607879523f3556ff7b0d5e679d0f73",
    "8d500cc679df36456e2a8593a6b00bb00323c7eb0a024ae11b015e612b4e798f",
    "fe2e1302aa2d6b6c241781fd23eff498614f44447e3d6491357e870cd7e8bc0c",
    "d1d00fb77d6b2b322aa1618295fb278dffd8b057904b92e11f017e5aa9542b26",
    "460d48d4aa4a02d8de78ebcfdf6c1fd960f50454303fe682db7cdb6910ef6ff3",
    "53331400017eefd581ea1b6f6c4090bd55d1dbdc6ef2402c4592545aa4a9798c",
    "9101ef456be36032b527aabe95401f772d590fba8151593048f87124d356394e",
    "e73814d2f86841985a5f3276c37864c3469d380de04c146202641dcf1ba19047",
    "fbb5c8f7f0328587a9c21bea7b94ad61bb693cf6013c9f4179f80f0477bbc933",
    "ce01c0cd2e4e42130d75f279bd2d196adc264dba4f56bdcf6ddcce2fe8430638",
    "6ec70cda31726a21a7b4d07ac98ebf271bb1960d0cae96b74007e7db3fe38e25",
    "82a70fa0ef509c7595e05eb224b9e4288decd3e3625bcbe80d5048b5722c02cf",
    "93f3d2b39d1c02719e5314ce07bde929d871b6a4597b54fe3a4453d5b00c9ab5",
    "3d6e971df2661983d5d19ac0c2512da5f0c29908d0fbb09251fdc9ef428c910f",
    "f2e2a2ace52a588cdcbe27a781b32ba7094832e62c4d4df7ae691154f9117237",
    "a36ac725be29121637597fd909544f320d2ad8959d3800d876980a7fe82c5e59",
    "3344733354932e10688ad82bd19e27ad1d0d0750abbd74eb3c06bc3e3afaea00",
    "2942b165eb0e2b95997ff6299d5717993e065ae268439fdaf8757312cf1096ad",
    "2efb611f9d2c5178e9931daf7d4fca3878a6c5e77f9185ee9f1a4e5bddc27848",
    "2e17b038b6fa1c5174c25b79b654932162a4b5d1f109537682606387a4e18bcf",
    "d3f31bbb5653141c4d75486685f0c57372ab7a8a1dbe3125f004db50e375b411",
    "969f0f0b83a1b7b64357a8d2c39a321a8098a2193ab2bcbbace9d09005b0f23d",
    "c179106ce19dcc07ce5702bd401eee5a4a5d3d3ac9035dc9509ac22e94862e7b",
    "aa2884b03621f64088a52a57965aa1e38df8eea32a1946281b7683df8a79cd3b",
    "38284b04e10b6d70a6da7dc69b969ba7f1b89e4fc94769bc75ecc8d578eb930e",
    "93aa423ec3185385a5f0fcdab4956828cf7db2d1c0c33c6cbab519274a4c1756",
    "22b19e741eb7f68dd3e3e0259b125665ef833db04bf1930d81b2b83d894bce7b",
    "2e096edd148361d2feb556d51cdbd9f1324bc4c40c9046163334cd8dbbc893c7",
    "cac6e8c31155ff422a2a4e9cd68a77ed57b8cac1b9cfceb84ad107f3ccbc0723",
];
pub const RANDOM_3MIB_XORB: &str =
    "9547052b878d296de7d9a369b37bbaa4547d3441b22c859260e83680558b31f4";
pub const RANDOM_3MIB_FILE: &str =
    "75ba31fb72ebb2bc86134942cb1a5fd2c047d6f3ee134004dacfd3d3b57748ff";
pub const RANDOM_3MIB_VERIFY: &str =
    "c515e805a094f2a37d6de4e64b3eb5e9de2b9e94afe8330db6bd03a32418a39b";
// TEXT_1MIB: 1048576 bytes, 14 chunks; file hash confirmed by hf_xet.hash_files
pub const TEXT_1MIB_SIZES: &[u64] = &[
    52981, 82667, 110315, 69850, 109001, 131072, 75389, 64280, 11497, 76513, 80005, 21005, 56564,
    107437,
];
pub const TEXT_1MIB_CHUNKS: &[&str] = &[
    "d8886479280a2dc581531699580a55478987d07cd9ce1a5b5a01eff5b9a2590e",
    "6a69e5f191fe9c4d7f6f62f11fc705063eaa56904569f5faf42cf8ce014ea217",
    "5fee1d656402e2c3a0b020bdab4f4eb0131f9b3ffad647668fa6cc2c0ceba6a8",
    "04d66727f6bb69f488c6ae1cd1495548c9164590ba9e36695a2a3ddf1ded8b47",
    "a116ed79f1f5941d5c1a6e49b64404c245b893ad2303edc600fa0290002bd228",
    "febc8ec168ffba69e834e9f3b87b72ab39dbdc09a46b2539cd5ec36de1c64e77",
    "b40a8ba7bd03424ad070b8e5c03ddcea41c27082407dce289e99078fc880a593",
    "0d93cc051bb24b5f9c3e7544aaee9e7d23d0ffbf5204eb2d3b61ca2a13d9b188",
    "87c19e2a2e78a4de6082f6febf16db47f0d05d56a11b8deab383687b3f2905b2",
    "92471c2bf118fbe477e9e1530703c9629bbe3a185e4d903ebcfcd6b1556cfe1f",
    "a4311f0ffb828f68c359ee06d9236fa92bb9d3c63c98a8ac1295b4db7dd6570b",
    "9a5d1c864c76fb5fd7f717de7b07a9875da5a4b84223cb9ee8ea5b8f059d8cc3",
    "688493c3bc7550933cecd9f346a63752c3f1d22b178b09aaf16c4a4ca811f69e",
    "5c1c17df443ccc02e498f79a20026b9784756595261c1e6806e1668c404fd26b",
];
pub const TEXT_1MIB_XORB: &str = "1c2fd5d4d92dc7303e3a5999924a7bdba2a51326a6f511c04d667403019b7606";
pub const TEXT_1MIB_FILE: &str = "348821da27af380ffc046dbeab877ac879b700a64b71b5f4a68ee4f1bb14ae05";
pub const TEXT_1MIB_VERIFY: &str =
    "37844e83fb10aff61e0d4aef4e4edea3e2bec27c936fbe633d4bfc1eed92da2b";
// RANDOM_70MIB: 73400320 bytes; file hash from hf_xet.hash_files
pub const RANDOM_70MIB_FILE: &str =
    "11ca5486b2aac37d5259d6e6f67b59f130fceb7a46bc0f52b1b26358c5c1b5fb";
