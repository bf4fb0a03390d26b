"""Account v3: projects (list, get)."""
from __future__ import annotations

from aiohttp import web

from engine.sandbox import iam, replies
from engine.sandbox.replies import multi, ok, paginate
from engine.sandbox.world import WORLD


async def list_projects(request: web.Request) -> web.Response:
    iam.require(request, "project", "read", "project")
    world = request.app[WORLD]
    mine = iam.caller_org(request)
    projects = [p for p in world.state.coll("projects").values()
                if p["organization_id"] == mine]
    org = request.query.get("organization_id")
    if org:
        projects = [p for p in projects if p["organization_id"] == org]
    name = request.query.get("name")
    if name:
        projects = [p for p in projects if name in p["name"]]
    wanted = multi(request, "project_ids")
    if wanted:
        projects = [p for p in projects if p["id"] in wanted]
    projects = replies.order(projects, request.query.get("order_by"))
    return ok({"total_count": len(projects), "projects": paginate(projects, request)})


async def get_project(request: web.Request) -> web.Response:
    iam.require(request, "project", "read", "project")
    project_id = request.match_info["project_id"]
    project = request.app[WORLD].state.coll("projects").get(project_id)
    if project is None:
        raise replies.not_found("project_id", project_id)
    if project["organization_id"] != iam.caller_org(request):
        raise replies.permissions_denied("project", "read")
    return ok(project)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/account/v3/projects", list_projects)
    app.router.add_get("/account/v3/projects/{project_id}", get_project)
