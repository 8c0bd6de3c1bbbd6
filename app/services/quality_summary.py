"""A project's headline quality figures: volume, agreement with CI, team scorecards, flagged annotators."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.principal import Principal
from app.services import quality_reports
from app.services.quality_reports import Agreement, AnnotatorScorecard, ReportQuery, TeamScorecard


@dataclass(frozen=True, slots=True)
class QualitySummary:
    """What `GET /api/v1/projects/{slug}/quality` returns and `prefstack quality report` prints."""

    project_slug: str
    project_name: str
    kind: str
    query: ReportQuery
    judgments: int
    items: int
    annotators: int
    agreement: list[Agreement]
    teams: list[TeamScorecard]
    flagged: list[AnnotatorScorecard]
    """Annotators with at least one flag, most flags first."""


def quality_summary(session: Session, *, principal: Principal, slug: str, query: ReportQuery) -> QualitySummary:
    """The headline figures of the dashboard and the scorecards, with the same filters, on one read (leads)."""
    shared = quality_reports.load_report_facts(session, principal=principal, slug=slug, query=query)
    dashboard = quality_reports.dashboard(session, principal=principal, slug=slug, query=query, shared=shared)
    teams = quality_reports.team_scorecards(session, principal=principal, slug=slug, query=query, shared=shared)
    annotators = quality_reports.annotator_scorecards(
        session, principal=principal, slug=slug, query=query, shared=shared
    )
    return summarize(dashboard, teams, annotators)


def summarize(
    dashboard: quality_reports.Dashboard, teams: quality_reports.TeamScorecards, annotators: quality_reports.Scorecards
) -> QualitySummary:
    """The summary of reports already computed with one query."""
    return QualitySummary(
        project_slug=dashboard.project_slug,
        project_name=dashboard.project_name,
        kind=dashboard.kind,
        query=dashboard.query,
        judgments=dashboard.judgments,
        items=dashboard.items,
        annotators=dashboard.annotators,
        agreement=dashboard.agreement,
        teams=teams.teams,
        flagged=[card for card in annotators.annotators if card.flags],
    )
