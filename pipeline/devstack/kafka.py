"""Apache Kafka, single node in KRaft mode, from the official jars on Maven Central."""

from __future__ import annotations

__all__ = ["KafkaService"]

import base64
import fcntl
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from pipeline.devstack.probes import kafka_api_versions
from pipeline.devstack.service import Service
from pipeline.errors import DevstackError

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>edgeloop.devstack</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_{scala}</artifactId>
      <version>{version}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId>
      <version>2.0.17</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log_dir}/server.log
appender.file.filePattern = {log_dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


class KafkaService(Service):
    """Local Kafka broker and controller in one JVM."""

    name = "kafka"

    @property
    def port(self) -> int:
        return self.config.kafka.port

    def ports(self) -> list[int]:
        return [self.config.kafka.port, self.config.kafka.controller_port]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def lib_dir(self) -> Path:
        """Where the resolved jars of this Kafka version live."""
        k = self.config.kafka
        return self.cache_dir / "kafka" / f"kafka_{k.scala}-{k.version}" / "libs"

    def _check_java(self) -> None:
        java = shutil.which(self.config.kafka.java)
        if java is None:
            raise DevstackError(
                "java is not installed",
                where=self.name,
                hint="install OpenJDK 17 (apt-get install openjdk-17-jre-headless)",
            )

    def prepare(self) -> None:
        self._check_java()
        done = self.lib_dir.parent / ".complete"
        if done.exists():
            return
        mvn = shutil.which(self.config.kafka.mvn)
        if mvn is None:
            raise DevstackError(
                "Maven (mvn) is needed once to fetch the Kafka jars",
                where=self.name,
                hint="apt-get install maven",
            )
        k = self.config.kafka
        work = self.lib_dir.parent
        work.mkdir(parents=True, exist_ok=True)
        with (work / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if done.exists():
                return
            self.progress(
                f"kafka: resolving Apache Kafka {k.version} jars from Maven Central "
                "(first time only)"
            )
            (work / "pom.xml").write_text(_POM.format(scala=k.scala, version=k.version))
            shutil.rmtree(self.lib_dir, ignore_errors=True)
            result = subprocess.run(
                [
                    mvn,
                    "-B",
                    "-q",
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={self.lib_dir}",
                    "-DincludeScope=runtime",
                ],
                cwd=work,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise DevstackError(
                    f"Maven could not resolve Kafka {k.version}: "
                    f"{(result.stdout + result.stderr).strip()[-3000:]}",
                    where=self.name,
                    hint="check the version in the devstack config (kafka.version)",
                )
            done.write_text(k.version)

    def _classpath(self) -> str:
        return f"{self.lib_dir}/*"

    def _java(self) -> str:
        java = shutil.which(self.config.kafka.java)
        if java is None:
            raise DevstackError("java is not installed", where=self.name)
        return java

    def argv(self) -> list[str]:
        k = self.config.kafka
        props = self.conf_dir / "server.properties"
        props.write_text(
            "# Generated by edgeloop devstack\n"
            "process.roles=broker,controller\n"
            "node.id=1\n"
            f"controller.quorum.voters=1@{self.host}:{k.controller_port}\n"
            f"listeners=PLAINTEXT://{self.host}:{k.port},CONTROLLER://{self.host}:{k.controller_port}\n"
            f"advertised.listeners=PLAINTEXT://{self.host}:{k.port}\n"
            "controller.listener.names=CONTROLLER\n"
            "inter.broker.listener.name=PLAINTEXT\n"
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
            f"log.dirs={self.data_dir}/logs\n"
            f"num.partitions={k.partitions}\n"
            "offsets.topic.replication.factor=1\n"
            "offsets.topic.num.partitions=8\n"
            "transaction.state.log.replication.factor=1\n"
            "transaction.state.log.min.isr=1\n"
            "transaction.state.log.num.partitions=4\n"
            "share.coordinator.state.topic.replication.factor=1\n"
            "share.coordinator.state.topic.min.isr=1\n"
            "group.initial.rebalance.delay.ms=0\n"
            "auto.create.topics.enable=true\n"
            "delete.topic.enable=true\n"
            "log.retention.hours=168\n"
            "num.network.threads=2\n"
            "num.io.threads=4\n"
        )
        (self.conf_dir / "log4j2.properties").write_text(_LOG4J2.format(log_dir=self.log_dir))
        self._format_storage(props)
        return [
            self._java(),
            f"-Xmx{k.heap}",
            "-Xms256m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.conf_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.log_dir}",
            "-cp",
            self._classpath(),
            "kafka.Kafka",
            str(props),
        ]

    def _format_storage(self, props: Path) -> None:
        if (self.data_dir / "logs" / "meta.properties").exists():
            return
        cluster_file = self.state_dir / "cluster.id"
        if not cluster_file.exists():
            # A Kafka cluster id is 16 random bytes, base64url without padding.
            cluster_file.write_text(
                base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            )
        result = subprocess.run(
            [
                self._java(),
                "-cp",
                self._classpath(),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_file.read_text().strip(),
                "-c",
                str(props),
            ],
            capture_output=True,
            text=True,
            check=False,
            env=dict(os.environ, KAFKA_LOG4J_OPTS="-Dlog4j2.level=warn"),
        )
        if result.returncode != 0:
            raise DevstackError(
                f"formatting the KRaft storage failed: {(result.stdout + result.stderr)[-2000:]}",
                where=self.name,
            )

    def probe(self) -> str | None:
        return kafka_api_versions(self.host, self.port)

    def version(self) -> str | None:
        return self.config.kafka.version
