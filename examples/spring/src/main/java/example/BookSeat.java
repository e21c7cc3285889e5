package example;

import java.time.Duration;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.springframework.kafka.core.DefaultKafkaConsumerFactory;
import org.springframework.kafka.core.DefaultKafkaProducerFactory;
import org.springframework.kafka.listener.ContainerProperties;
import org.springframework.kafka.listener.KafkaMessageListenerContainer;
import org.springframework.kafka.requestreply.ReplyingKafkaTemplate;

/**
 * Books seats through ticketd and waits for the reply. ReplyingKafkaTemplate
 * sets kafka_replyTopic and kafka_correlationId; ticketd answers on that
 * topic with the same correlation id.
 *
 * <p>Usage: BookSeat EVENT_ID SECTION_ID QUANTITY CUSTOMER (TICKETD_BROKERS
 * names the brokers). Prints the reply; exit 0, or 1 after 10 s without one.
 */
public final class BookSeat {
  public static void main(String[] args) throws Exception {
    String brokers = System.getenv().getOrDefault("TICKETD_BROKERS", "127.0.0.1:9092");
    String requestId = "spring-" + UUID.randomUUID();
    String json = String.format(
        "{\"type\":\"book\",\"request_id\":\"%s\",\"event_id\":%d,\"section_id\":%d,"
            + "\"quantity\":%d,\"customer\":\"%s\"}",
        requestId, Long.parseLong(args[0]), Long.parseLong(args[1]),
        Integer.parseInt(args[2]), args[3].replace("\\", "\\\\").replace("\"", "\\\""));

    var producers = new DefaultKafkaProducerFactory<String, String>(Map.of(
        ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers,
        ProducerConfig.ACKS_CONFIG, "all",
        ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class,
        ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class));
    var consumers = new DefaultKafkaConsumerFactory<String, String>(Map.of(
        ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers,
        ConsumerConfig.GROUP_ID_CONFIG, "booking-client-" + UUID.randomUUID(),
        ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "latest",
        ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class,
        ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class));
    var replies = new KafkaMessageListenerContainer<>(
        consumers, new ContainerProperties("bookings.replies"));
    var template = new ReplyingKafkaTemplate<>(producers, replies);
    // bookings.replies carries every client's replies: others' are no error.
    template.setSharedReplyTopic(true);
    template.setDefaultReplyTimeout(Duration.ofSeconds(10));
    template.start();
    try {
      if (!template.waitForAssignment(Duration.ofSeconds(30))) {
        throw new IllegalStateException("reply topic not assigned within 30 s");
      }
      // Keyed by section: one section's requests stay in order.
      var request = new ProducerRecord<String, String>("bookings.requests", args[1], json);
      ConsumerRecord<String, String> reply =
          template.sendAndReceive(request).get(10, TimeUnit.SECONDS);
      System.out.println(reply.value());
    } catch (TimeoutException e) {
      System.err.println("no reply to " + requestId + " within 10 s");
      System.exit(1);
    } finally {
      template.stop();
      template.destroy(); // its reply-timeout scheduler would keep the JVM up
      producers.destroy();
    }
  }
}
