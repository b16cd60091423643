"""What the library pages show: kind labels, upload purposes and states."""

from flask_babel import lazy_gettext as _l

from models import MaterialKind, UploadPurpose, UploadStatus

KIND_LABELS = {
    MaterialKind.IMAGE: _l("Image"),
    MaterialKind.FILE: _l("File"),
    MaterialKind.ARTICLE: _l("Article"),
    MaterialKind.LINK: _l("Link card"),
    MaterialKind.MINIPROGRAM: _l("Mini-program card"),
}
PURPOSE_LABELS = {
    UploadPurpose.OA_IMAGE: _l("Permanent image"),
    UploadPurpose.OA_DRAFT: _l("Draft (mpnews)"),
    UploadPurpose.WECOM_MEDIA: _l("Temporary media (3 days)"),
    UploadPurpose.WECOM_IMAGE_URL: _l("Image URL"),
}
STATUS_LABELS = {
    UploadStatus.UPLOADING: _l("Uploading"),
    UploadStatus.OK: _l("Up to date"),
    UploadStatus.FAILED: _l("Failed"),
}
STATUS_BADGES = {
    UploadStatus.UPLOADING: "warn",
    UploadStatus.OK: "ok",
    UploadStatus.FAILED: "error",
}


def kind_label(kind: str) -> str:
    return str(KIND_LABELS.get(kind, kind))


def human_size(size: int | None) -> str:
    if size is None:
        return ""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def labels() -> dict:
    return {
        "kind_labels": KIND_LABELS,
        "purpose_labels": PURPOSE_LABELS,
        "status_labels": STATUS_LABELS,
        "status_badges": STATUS_BADGES,
        "human_size": human_size,
    }
