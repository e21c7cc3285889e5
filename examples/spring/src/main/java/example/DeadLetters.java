package example;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.springframework.kafka.core.DefaultKafkaConsumerFactory;
import org.springframework.kafka.support.KafkaHeaders;

/**
 * Reads the dead-letter topic from the start and prints each record's
 * origin the way a Spring application reads DeadLetterPublishingRecoverer's
 * headers: Spring's own header names (KafkaHeaders.DLT_*), the last value
 * of each, ints and longs big-endian (ByteBuffer), text in UTF-8.
 *
 * <p>Usage: DeadLetters [TOPIC [COUNT]] (default bookings.dead-letter, 1).
 */
public final class DeadLetters {
  public static void main(String[] args) {
    String brokers = System.getenv().getOrDefault("TICKETD_BROKERS", "127.0.0.1:9092");
    String topic = args.length > 0 ? args[0] : "bookings.dead-letter";
    int wanted = args.length > 1 ? Integer.parseInt(args[1]) : 1;
    var factory = new DefaultKafkaConsumerFactory<byte[], byte[]>(Map.of(
        ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers,
        ConsumerConfig.GROUP_ID_CONFIG, "dead-letters-" + UUID.randomUUID(),
        ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest",
        ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class,
        ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class));
    int seen = 0;
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    try (var consumer = factory.createConsumer()) {
      consumer.subscribe(List.of(topic));
      while (seen < wanted && System.nanoTime() < deadline) {
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
          Headers h = r.headers();
          System.out.printf(
              "partition=%d original-topic=%s original-partition=%d original-offset=%d "
                  + "original-timestamp=%d original-timestamp-type=%s consumer-group=%s "
                  + "exception-fqcn=%s exception-message=%s%n",
              r.partition(), text(h, KafkaHeaders.DLT_ORIGINAL_TOPIC),
              ByteBuffer.wrap(bytes(h, KafkaHeaders.DLT_ORIGINAL_PARTITION)).getInt(),
              ByteBuffer.wrap(bytes(h, KafkaHeaders.DLT_ORIGINAL_OFFSET)).getLong(),
              ByteBuffer.wrap(bytes(h, KafkaHeaders.DLT_ORIGINAL_TIMESTAMP)).getLong(),
              text(h, KafkaHeaders.DLT_ORIGINAL_TIMESTAMP_TYPE),
              text(h, KafkaHeaders.DLT_ORIGINAL_CONSUMER_GROUP),
              text(h, KafkaHeaders.DLT_EXCEPTION_FQCN),
              text(h, KafkaHeaders.DLT_EXCEPTION_MESSAGE));
          seen++;
        }
      }
    }
    System.exit(seen >= wanted ? 0 : 1);
  }

  private static byte[] bytes(Headers headers, String name) {
    Header h = headers.lastHeader(name);
    if (h == null) {
      throw new IllegalStateException("no header " + name);
    }
    return h.value();
  }

  private static String text(Headers headers, String name) {
    return new String(bytes(headers, name), StandardCharsets.UTF_8);
  }
}
