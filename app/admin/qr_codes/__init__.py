"""Channel QR codes: parametric OA codes per event, poster or webinar, with the tags a
scan gives, the welcome reply it answers with, and their scans and follows per day.

outreach.qr_codes asks WeChat first and stores the code after, so a refusal leaves
nothing behind; the image is drawn from the code's content (segno), so no image service
is needed.
"""

from app.admin.qr_codes import views  # noqa: F401  (registers the routes on the admin bp)
