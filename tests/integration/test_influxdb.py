"""InfluxDB 2 write and Flux query through influxdb-client."""

from __future__ import annotations

from influxdb_client import Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS


def test_write_and_flux_query(influx_client, influx_bucket, influx_credentials):
    write = influx_client.write_api(write_options=SYNCHRONOUS)
    base = 1_790_000_000_000_000_000
    points = [
        Point("inference")
        .tag("site", "plant-a")
        .tag("device", "cam-01")
        .tag("label", "ok")
        .field("score", 0.5 + i / 100)
        .time(base + i * 1_000_000_000, WritePrecision.NS)
        for i in range(10)
    ]
    write.write(bucket=influx_bucket, record=points)
    # Writing the same points again must not duplicate them (deterministic series+time).
    write.write(bucket=influx_bucket, record=points)
    query = (
        f'from(bucket: "{influx_bucket}") |> range(start: 0) '
        '|> filter(fn: (r) => r._measurement == "inference" and r._field == "score")'
    )
    tables = influx_client.query_api().query(query, org=influx_credentials.org)
    values = [rec.get_value() for table in tables for rec in table.records]
    assert values == [0.5 + i / 100 for i in range(10)]


def test_reader_token_cannot_write(influx_credentials, influx_bucket):
    from influxdb_client import InfluxDBClient
    from influxdb_client.rest import ApiException

    with InfluxDBClient(
        url=influx_credentials.url,
        token=influx_credentials.reader_token,
        org=influx_credentials.org,
    ) as client:
        write = client.write_api(write_options=SYNCHRONOUS)
        try:
            write.write(bucket=influx_bucket, record="m,t=a f=1i 1")
        except ApiException as exc:
            assert exc.status in (401, 403)
        else:
            raise AssertionError("the reader token was allowed to write")
