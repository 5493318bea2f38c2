//! `nfsgw demo` as a new user meets it: whoever runs it, and whatever uid the NFS client
//! sends, the person trying the demo can write to the directory it serves.

use crate::harness::{spawn_demo, tempdir};

#[tokio::test]
async fn any_client_of_the_demo_can_write_to_it() {
    let tmp = tempdir("nfsgw-demo-");
    let dir = tmp.path().join("demo");
    let server =
        spawn_demo(&dir).unwrap_or_else(|exited| panic!("the demo did not start\n{exited}"));
    assert!(
        server.stdout().contains("writes work"),
        "the banner shows a write that works:\n{}",
        server.stdout()
    );
    // A root client (squashed by default elsewhere) and an ordinary uid both write.
    for (uid, gid) in [(0, 0), (1000, 1000)] {
        let mut client = server
            .try_mount_as("/demo", Some((uid, gid)))
            .await
            .unwrap_or_else(|e| panic!("mounting the demo as uid {uid}: {e:?}"));
        let root = client.root.clone();
        let name = format!("from-uid-{uid}.txt");
        let file = client
            .create(&root, &name, 0o644)
            .await
            .unwrap_or_else(|stat| panic!("uid {uid} cannot create in the demo: {stat:?}"));
        client
            .write_all(&file, 0, b"hello from the demo\n")
            .await
            .unwrap_or_else(|stat| panic!("uid {uid} cannot write in the demo: {stat:?}"));
        assert_eq!(
            std::fs::read(dir.join(&name)).unwrap(),
            b"hello from the demo\n"
        );
    }
    assert!(
        dir.join("README.txt").is_file(),
        "the sample files are there"
    );
}
