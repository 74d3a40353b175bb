-- post64k.lua: every request is a POST of a 64 KiB body (scenario echo64k, app apps/echo.py).
wrk.method = "POST"
wrk.body = string.rep("x", 65536)
wrk.headers["Content-Type"] = "application/octet-stream"
