package pagestream.bench;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.LogAndContinueExceptionHandler;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;

/**
 * The anchor of the bench's analytics row: pagestream's analytics semantics the Kafka Streams way. PageEvents
 * (JSON) windowed on event time (their `date`), tumbling, with grace, grouped by page (a repartition, as
 * pagestream's re-keying stage does), counted, exactly_once_v2; every count update goes to the output as
 * `page@windowStart` -> count. Prints RUNNING once it processes, so the bench can time from there.
 * Arguments: key=value (bootstrap, application, input, output, window, grace, commit, state).
 */
public final class WindowedCount {
  /** The lab's PageEvent; unknown fields ignored, as pagestream's tolerant reader does. */
  public record PageEvent(String name, String user, String date, long duration) {}

  private static final ObjectMapper JSON = new ObjectMapper()
      .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

  private static final Serde<PageEvent> PAGE_EVENTS = Serdes.serdeFrom(
      (topic, event) -> write(event),
      (topic, bytes) -> read(bytes));

  private static byte[] write(PageEvent event) {
    try {
      return JSON.writeValueAsBytes(event);
    } catch (Exception e) {
      throw new IllegalArgumentException(e);
    }
  }

  private static PageEvent read(byte[] bytes) {
    try {
      return bytes == null ? null : JSON.readValue(bytes, PageEvent.class);
    } catch (Exception e) {
      throw new org.apache.kafka.common.errors.SerializationException(e);
    }
  }

  public static void main(String[] args) throws Exception {
    Map<String, String> arg = new HashMap<>();
    for (String a : args) {
      int eq = a.indexOf('=');
      arg.put(a.substring(0, eq), a.substring(eq + 1));
    }
    Duration window = Duration.ofMillis(Long.parseLong(arg.getOrDefault("window", "5000")));
    Duration grace = Duration.ofMillis(Long.parseLong(arg.getOrDefault("grace", "2000")));

    StreamsBuilder builder = new StreamsBuilder();
    builder.stream(arg.get("input"), Consumed.with(Serdes.String(), PAGE_EVENTS)
            .withTimestampExtractor((record, previous) -> record.value() instanceof PageEvent event
                ? Instant.parse(event.date()).toEpochMilli() : -1L))
        .groupBy((key, event) -> event.name(), Grouped.with("by-page", Serdes.String(), PAGE_EVENTS))
        .windowedBy(TimeWindows.ofSizeAndGrace(window, grace))
        .count()
        .toStream()
        .map((windowed, count) -> KeyValue.pair(
            windowed.key() + "@" + windowed.window().start(), count.toString()))
        .to(arg.get("output"), Produced.with(Serdes.String(), Serdes.String()));

    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, arg.get("application"));
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, arg.getOrDefault("bootstrap", "localhost:9092"));
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, arg.getOrDefault("commit", "100"));
    props.put(StreamsConfig.STATE_DIR_CONFIG,
        arg.getOrDefault("state", Files.createTempDirectory("ks-anchor").toString()));
    props.put(StreamsConfig.DEFAULT_DESERIALIZATION_EXCEPTION_HANDLER_CLASS_CONFIG,
        LogAndContinueExceptionHandler.class);
    props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");

    KafkaStreams streams = new KafkaStreams(builder.build(), props);
    CountDownLatch stopped = new CountDownLatch(1);
    streams.setStateListener((now, before) -> {
      if (now == KafkaStreams.State.RUNNING) {
        System.out.println("RUNNING");
        System.out.flush();
      }
      if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
        System.err.println("Kafka Streams " + now + " (was " + before + ")");
        stopped.countDown();
      }
    });
    // the bench reads stderr: a failure is shown, not left to a timeout
    streams.setUncaughtExceptionHandler(e -> {
      e.printStackTrace();
      return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close(Duration.ofSeconds(10));
      stopped.countDown();
    }));
    streams.start();
    stopped.await();
  }
}
