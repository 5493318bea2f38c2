"""The real huggingface_hub + hf_xet clients, driven by nfsgw's end-to-end tests (tests/all/hub.rs).

    python client.py upload-folder REPO_TYPE REPO_ID FOLDER
    python client.py create-bucket BUCKET_ID
    python client.py bucket-put BUCKET_ID LOCAL_FILE PATH_IN_BUCKET
    python client.py bucket-get BUCKET_ID PATH_IN_BUCKET LOCAL_FILE
    python client.py bucket-list BUCKET_ID          (prints one file path per line)

HF_ENDPOINT and HF_TOKEN say which Hub; the caller gives every run a fresh HF_HOME (hf_xet keeps
a dedup cache there). Errors exit non-zero with the client's message on stderr.
"""

import os
import sys

from huggingface_hub import HfApi


def main(argv):
    api = HfApi(endpoint=os.environ["HF_ENDPOINT"], token=os.environ["HF_TOKEN"])
    cmd, args = argv[0], argv[1:]
    if cmd == "upload-folder":
        repo_type, repo_id, folder = args
        api.create_repo(repo_id, repo_type=repo_type, exist_ok=True,
                        **({"space_sdk": "static"} if repo_type == "space" else {}))
        info = api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type=repo_type)
        print(info.oid)
    elif cmd == "create-bucket":
        (bucket,) = args
        api.create_bucket(bucket)
    elif cmd == "bucket-put":
        bucket, local, path = args
        api.batch_bucket_files(bucket, add=[(local, path)])
    elif cmd == "bucket-get":
        bucket, path, local = args
        api.download_bucket_files(bucket, [(path, local)])
    elif cmd == "bucket-list":
        (bucket,) = args
        for entry in api.list_bucket_tree(bucket, recursive=True):
            if entry.type == "file":
                print(entry.path)
    else:
        sys.exit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
