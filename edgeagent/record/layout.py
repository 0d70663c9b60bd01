"""What an export zip holds, by name: shared by the writer and by ``verify``, which must run without the
agent's media stack (PyAV) on an auditor's machine."""

FORMAT = "edgeagent-export/1"
CLIP_NAME = "clip.mp4"
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
PUBLIC_KEY_NAME = "public-key.pem"
